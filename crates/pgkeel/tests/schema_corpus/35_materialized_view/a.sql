create table t (g int, n int);
