create table t (id bigint, s text);
