create type pair as (a int, b text);
