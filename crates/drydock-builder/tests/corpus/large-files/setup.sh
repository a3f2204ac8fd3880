mkdir big
seq 1 3000000 > big/numbers.txt
awk 'BEGIN{for(i=0;i<400000;i++) printf "%08x\n", (i*2654435761)%4294967296}' > big/random.bin
head -c 1 /dev/null > big/empty
