echo a > tree/a
ln tree/a tree/a-hardlink
mkdir -p tree/sub
ln tree/a tree/sub/a-other-dir
