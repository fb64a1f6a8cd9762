create table t (id int, n int);
