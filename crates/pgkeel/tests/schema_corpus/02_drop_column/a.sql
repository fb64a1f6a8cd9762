create table t (id int, extra text);
