create table old_name (id int);
