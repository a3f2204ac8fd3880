ln -s target links/to-file
ln -s ../file.txt links/up
ln -s /nonexistent links/dangling
ln -s file.txt link-to-file
mkdir -p links/d && ln -s d links/to-dir
