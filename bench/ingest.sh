#!/usr/bin/env bash
# Ingest of a 1 GiB blob into the content store (hash while writing, fsync, rename) vs
# `sha256sum` of the same file, in the same run. Target: ratio <= 1.2.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb="${INGEST_MB:-1024}"
cargo build --profile bench-fast --quiet -p drydock-content --example bench_ingest
bin=target/bench-fast/examples/bench_ingest
work=$(mktemp -d /var/tmp/drydock-bench-ingest.XXXXXX)
trap 'rm -rf "$work"' EXIT
head -c "$((size_mb << 20))" /dev/urandom > "$work/blob"
cat "$work/blob" > /dev/null   # warm the page cache for both
best() { sort -n | head -1; }
ours=$(for i in 1 2 3; do rm -rf "$work/store"; "$bin" "$work/blob" "$work/store" | cut -d' ' -f1; done | best)
peer=$(for i in 1 2 3; do /usr/bin/time -f %e sha256sum "$work/blob" 2>&1 >/dev/null | tail -1; done | best)
ratio=$(awk -v a="$ours" -v b="$peer" 'BEGIN { printf "%.2f", a / b }')
printf '%-44s %8s %8s %7s\n' "ingest ${size_mb} MiB (best of 3)" "drydock" "sha256sum" "ratio"
printf '%-44s %7.2fs %7.2fs %7s\n' "" "$ours" "$peer" "$ratio"
