create sequence s1 as integer start 100 increment 5 maxvalue 100000 cache 10 cycle;
create sequence s3;
