create table t (n int, updated timestamptz);
create function touch() returns trigger language plpgsql as $$ begin new.updated := now(); return new; end $$;
create trigger t_touch before update on t for each row when (old.n is distinct from new.n) execute function touch();
create trigger t_touch2 before insert on t for each row execute function touch();
alter table t disable trigger t_touch2;
