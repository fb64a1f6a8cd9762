create table t (a int, b int, unique nulls not distinct (a, b));
