create table doc (owner text, body text);
