create table t (id int, x int);
create view v1 as select id, x from t;
create view v2 as select x from v1 where id > 0;
