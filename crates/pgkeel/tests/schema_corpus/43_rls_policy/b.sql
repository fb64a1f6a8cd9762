create table doc (owner text, body text);
alter table doc enable row level security;
alter table doc force row level security;
create policy mine on doc for all to public using (owner = current_user) with check (owner = current_user);
create policy ro on doc as restrictive for select using (body is not null);
