create sequence ids;
create table t (id bigint default nextval('ids'), s text);
