create function f(a int) returns int language sql as 'select 1';
create function f(a text) returns text language sql as 'select a';
create function g() returns bigint language sql as 'select 1';
