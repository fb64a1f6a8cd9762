create table "User" (id int primary key, "select" text, "Mixed Case" int, "naïve 名前" text, "a""quote" int);
create table "order" ("from" int references "User"(id), "to" int);
create index "Idx Ünïcode" on "order" ("to");
create view "Select" as select "from" from "order";
create type "Ümood" as enum ('Ä', 'it''s');
