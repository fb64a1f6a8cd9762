create sequence s1;
create sequence s2 increment 1;
