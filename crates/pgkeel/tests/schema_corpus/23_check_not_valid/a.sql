create table t (n int);
alter table t add constraint pos check (n > 0) not valid;
