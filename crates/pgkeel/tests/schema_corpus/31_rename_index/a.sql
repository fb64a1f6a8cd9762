create table t (a int);
create index i_old on t (a);
