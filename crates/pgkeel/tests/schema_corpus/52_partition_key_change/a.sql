create table ev (id int, at date) partition by range (at);
