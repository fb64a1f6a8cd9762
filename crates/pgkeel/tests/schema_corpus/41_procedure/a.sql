create table log (msg text);
