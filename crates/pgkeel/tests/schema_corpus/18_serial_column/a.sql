create table t (name text);
