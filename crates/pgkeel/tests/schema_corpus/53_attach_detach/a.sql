create table ev (id int, at date) partition by range (at);
create table ev_old (id int, at date);
