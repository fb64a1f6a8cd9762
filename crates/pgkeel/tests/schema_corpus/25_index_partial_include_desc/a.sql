create table t (a int, b int, c text);
create index t_a on t (a);
