create table t (id int, at timestamptz default now());
