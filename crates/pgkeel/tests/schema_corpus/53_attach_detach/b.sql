create table ev (id int, at date) partition by range (at);
create table ev_old partition of ev for values from ('2000-01-01') to ('2001-01-01');
