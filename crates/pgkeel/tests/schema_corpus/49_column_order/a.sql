create table t (a int, c int);
