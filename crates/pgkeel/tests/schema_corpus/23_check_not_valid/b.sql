create table t (n int);
alter table t add constraint pos check (n > 0);
alter table t add constraint small check (n < 100) not valid;
