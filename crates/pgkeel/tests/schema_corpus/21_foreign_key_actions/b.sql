create table p (id int primary key);
create table c (id int, p_id int references p on delete set null on update restrict deferrable initially deferred);
