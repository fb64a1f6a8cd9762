create table p (id int primary key);
create table c (id int, p_id int references p on delete cascade);
