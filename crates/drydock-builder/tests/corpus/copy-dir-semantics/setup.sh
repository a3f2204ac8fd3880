chmod 700 dir/sub
