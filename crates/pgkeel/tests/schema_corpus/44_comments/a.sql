create table t (id int primary key, s text);
create index t_s on t (s);
