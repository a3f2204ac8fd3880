#!/bin/sh
# The example's tests: the script prints the greeting, and only the greeting.
set -e
out=$(GREETING="Hello from drydock" sh app/hello.sh)
[ "$out" = "Hello from drydock!" ] || { echo "unexpected output: $out"; exit 1; }
echo "ok: app/hello.sh greets"
