create table t (doc jsonb);
