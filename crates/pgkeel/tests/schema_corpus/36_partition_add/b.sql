create table ev (id int, at date) partition by range (at);
create table ev_2020 partition of ev for values from ('2020-01-01') to ('2021-01-01');
create table ev_2021 partition of ev for values from ('2021-01-01') to ('2022-01-01');
create index ev_at on ev (at);
