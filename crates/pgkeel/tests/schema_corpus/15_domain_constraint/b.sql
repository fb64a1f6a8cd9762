create domain d as text default 'x' constraint d_check check (length(value) < 20) constraint d_nonempty check (value <> '');
