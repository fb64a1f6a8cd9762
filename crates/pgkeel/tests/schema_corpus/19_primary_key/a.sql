create table t (id int, s text);
