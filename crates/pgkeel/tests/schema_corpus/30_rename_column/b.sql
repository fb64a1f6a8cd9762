create table t (id int, new_col text);
