create type pair as (a int, b varchar(10), c numeric);
