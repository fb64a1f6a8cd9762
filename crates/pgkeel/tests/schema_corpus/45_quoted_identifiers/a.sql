create table "User" (id int);
