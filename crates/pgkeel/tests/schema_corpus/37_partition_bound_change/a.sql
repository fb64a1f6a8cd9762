create table ev (id int, at date) partition by range (at);
create table ev_a partition of ev for values from ('2020-01-01') to ('2021-01-01');
