create table t (id int, at timestamptz default '2020-01-01');
