mkdir -p tree over
for d in $(seq 0 9); do
  mkdir -p tree/d$d
  for f in $(seq 0 29); do echo "file $d $f" > tree/d$d/f$f; done
  chmod 600 tree/d$d/f1; chmod 755 tree/d$d/f2
done
ln tree/d0/f5 tree/d9/link-to-d0-f5
ln tree/d0/f5 tree/d4/another-link
mkdir -p over/d2 over/d7/new
echo replaced > over/d2/f3
echo new > over/d7/new/file
chmod 700 over/d7/new
