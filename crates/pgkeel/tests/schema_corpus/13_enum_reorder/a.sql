create type mood as enum ('a', 'b', 'c');
