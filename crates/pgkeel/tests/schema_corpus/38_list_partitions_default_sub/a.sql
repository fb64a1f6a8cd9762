create table m (region text, at date, n int) partition by list (region);
