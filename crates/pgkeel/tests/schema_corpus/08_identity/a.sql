create table t (id int not null, s text);
