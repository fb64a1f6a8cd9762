create type mood as enum ('c', 'b', 'a');
