create table r (id int, during tstzrange, exclude using gist (during with &&));
