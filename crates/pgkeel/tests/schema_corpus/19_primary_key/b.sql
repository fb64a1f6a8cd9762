create table t (id int primary key, s text);
