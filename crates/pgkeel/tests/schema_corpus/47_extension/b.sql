create extension citext;
create table t (id int, email citext);
