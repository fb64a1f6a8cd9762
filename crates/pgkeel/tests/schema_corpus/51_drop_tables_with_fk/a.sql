create table p (id int primary key);
create table c (id int, p_id int references p);
create view cv as select p_id from c;
