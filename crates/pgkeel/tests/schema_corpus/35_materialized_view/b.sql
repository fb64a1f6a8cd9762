create table t (g int, n int);
create materialized view mv as select g, sum(n) as total from t group by g;
create unique index mv_g on mv (g);
