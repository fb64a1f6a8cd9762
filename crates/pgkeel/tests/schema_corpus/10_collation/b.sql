create table t (s text collate "C");
