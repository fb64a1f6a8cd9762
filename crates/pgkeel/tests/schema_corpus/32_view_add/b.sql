create table t (id int, s text);
create view v as select id from t where s is not null;
