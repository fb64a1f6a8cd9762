create table t (a int);
create unique index t_a_uq on t (a);
