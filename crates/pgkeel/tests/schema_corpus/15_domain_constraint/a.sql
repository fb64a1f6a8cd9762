create domain d as text check (length(value) < 10);
