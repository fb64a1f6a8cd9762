create schema app;
create table t (id int);
create table app.items (id int primary key, t_id int);
create view app.v as select id from app.items;
