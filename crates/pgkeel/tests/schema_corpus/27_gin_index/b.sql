create table t (doc jsonb);
create index t_doc on t using gin (doc jsonb_path_ops);
