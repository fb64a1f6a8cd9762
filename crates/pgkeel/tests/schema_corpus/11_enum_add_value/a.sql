create type mood as enum ('a', 'c');
create table t (m mood);
