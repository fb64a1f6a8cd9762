create function add1(a int) returns int language sql immutable as 'select a + 1';
