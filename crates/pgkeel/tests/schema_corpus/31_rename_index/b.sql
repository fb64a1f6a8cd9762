create table t (a int);
create index i_new on t (a);
