create table t (s text);
