create table t (id int) with (fillfactor = 70, autovacuum_enabled = false);
