create table t (n int, updated timestamptz);
create function touch() returns trigger language plpgsql as $$ begin new.updated := now(); return new; end $$;
