create unlogged table c (k text primary key, v text);
