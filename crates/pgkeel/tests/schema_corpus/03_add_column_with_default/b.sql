create table t (id int, status text not null default 'new', n int default 0);
