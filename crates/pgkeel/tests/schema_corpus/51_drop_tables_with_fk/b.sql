create table p (id int primary key);
