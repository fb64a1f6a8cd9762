create table t (a int, b int, c text);
create index t_a on t (a desc nulls last, b) include (c) where b > 0;
