create table a (id int);
create table b (id int primary key, name text not null);
