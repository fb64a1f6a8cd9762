create table t (s varchar(10));
