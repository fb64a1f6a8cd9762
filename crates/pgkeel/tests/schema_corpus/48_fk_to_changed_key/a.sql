create table p (id int, constraint p_pkey primary key (id));
create table c (p_id int references p);
