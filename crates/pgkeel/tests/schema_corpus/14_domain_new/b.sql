create domain posint as integer default 1 not null check (value > 0);
create table t (id int, n posint);
