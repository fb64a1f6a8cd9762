create function g() returns int language sql as 'select 1';
