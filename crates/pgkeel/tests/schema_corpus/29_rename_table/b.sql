create table new_name (id int);
