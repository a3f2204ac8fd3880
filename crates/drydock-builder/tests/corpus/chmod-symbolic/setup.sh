chmod 644 tool.sh tree/sub/data file.txt; chmod 755 tree/sub
