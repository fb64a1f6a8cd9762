create table m (region text, at date, n int) partition by list (region);
create table m_eu partition of m for values in ('eu', 'uk') partition by range (at);
create table m_eu_2020 partition of m_eu for values from ('2020-01-01') to ('2021-01-01');
create table m_other partition of m default;
alter table m add constraint m_n check (n >= 0);
