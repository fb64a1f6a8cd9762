create table t (id int, old_col text);
