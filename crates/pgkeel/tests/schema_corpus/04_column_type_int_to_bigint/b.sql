create table t (id int, n bigint);
