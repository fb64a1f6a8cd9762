create type mood as enum ('a', 'bee', 'c');
