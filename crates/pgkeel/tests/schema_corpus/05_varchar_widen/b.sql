create table t (s varchar(200));
