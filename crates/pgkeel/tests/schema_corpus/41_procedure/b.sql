create table log (msg text);
create procedure note(m text) language sql as $$ insert into log values (m) $$;
