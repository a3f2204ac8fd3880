ln -s ../../../../../etc/passwd escape
