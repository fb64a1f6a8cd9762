create table t (name text, id serial);
