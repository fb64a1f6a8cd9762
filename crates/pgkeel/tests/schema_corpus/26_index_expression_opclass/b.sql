create table t (s text);
create index t_lower on t (lower(s) text_pattern_ops);
