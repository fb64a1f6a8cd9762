create function add1(a int) returns int language sql immutable as 'select a + 2';
create function greet(who text default 'world') returns text language plpgsql stable security definer as $$ begin return 'hi ' || who; end $$;
