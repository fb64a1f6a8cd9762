create function g() returns bigint language sql as 'select 1::bigint';
