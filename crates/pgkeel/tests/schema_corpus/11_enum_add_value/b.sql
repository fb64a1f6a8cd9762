create type mood as enum ('z', 'a', 'b', 'c', 'd');
create table t (m mood);
