#!/usr/bin/env bash
# Layer creation and extraction vs the usual tools, in the same run on this machine:
#   tar+gzip  : drydock (tar + parallel gzip -6 + sha256 of tar and blob) vs `tar -cf - | pigz -6`
#   tar+zstd  : drydock (tar + zstd -3 multithreaded + both sha256)       vs `tar -cf - | zstd -3 -T0`
#   extract   : drydock apply of the gzip layer                            vs `tar -xzf`
# of a ~1 GiB tree copied from /usr (override with LAYER_TREE=DIR). Best of LAYER_RUNS (default 3);
# ratio = drydock / peer, target <= 1.0. Not a test: nothing fails on a slow figure.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in pigz zstd; do
  command -v "$tool" >/dev/null || { echo "installing $tool"; apt-get install -y -qq "$tool" >/dev/null; }
done
cargo build --release --quiet -p drydock-layer --example bench_layer
bin=$PWD/target/release/examples/bench_layer
runs="${LAYER_RUNS:-3}"
work=$(mktemp -d /var/tmp/drydock-bench-layer.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree="${LAYER_TREE:-}"
if [ -z "$tree" ]; then
  tree="$work/tree"
  mkdir -p "$tree/usr/lib"
  cp -a /usr/bin "$tree/usr/"
  cp -a /usr/lib/x86_64-linux-gnu "$tree/usr/lib/"
fi
size=$(du -sb "$tree" | cut -f1)
files=$(find "$tree" | wc -l)
find "$tree" -type f -print0 | xargs -0 cat > /dev/null   # warm the page cache for both sides

now() { date +%s.%N; }
best() { sort -n | head -1; }
peer_time() { # command string
  local t0 t1
  t0=$(now); bash -c "$1"; t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

printf 'tree: %s (%d MiB, %d paths), %d cores, best of %d\n' "$tree" $((size >> 20)) "$files" "$(nproc)" "$runs"
printf '%-34s %9s %9s %7s %11s %11s\n' "figure" "drydock" "peer" "ratio" "ours MiB" "peer MiB"
row() { # name ours peer ours_size peer_size
  local ratio
  ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", a / b }')
  printf '%-34s %8.2fs %8.2fs %7s %11s %11s\n' "$1" "$2" "$3" "$ratio" "$4" "$5"
}
mib() { awk -v s="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", s / 1048576 }'; }

# tar+gzip
ours=$(for _ in $(seq "$runs"); do "$bin" create "$tree" "$work/ours.tar.gz" gzip | cut -d' ' -f1; done | best)
peer=$(for _ in $(seq "$runs"); do peer_time "tar -C '$tree' -cf - . | pigz -6 > '$work/peer.tar.gz'"; done | best)
row "create tar+gzip (pigz -6)" "$ours" "$peer" "$(mib "$work/ours.tar.gz")" "$(mib "$work/peer.tar.gz")"

# tar+zstd
ours=$(for _ in $(seq "$runs"); do "$bin" create "$tree" "$work/ours.tar.zst" zstd | cut -d' ' -f1; done | best)
peer=$(for _ in $(seq "$runs"); do peer_time "tar -C '$tree' -cf - . | zstd -q -3 -T0 > '$work/peer.tar.zst'"; done | best)
row "create tar+zstd (zstd -3 -T0)" "$ours" "$peer" "$(mib "$work/ours.tar.zst")" "$(mib "$work/peer.tar.zst")"
rm -f "$work/peer.tar.zst" "$work/ours.tar.zst"

# extraction of the same gzip layer (ours), into fresh directories
ours=$(for _ in $(seq "$runs"); do rm -rf "$work/x"; mkdir "$work/x"; sync; "$bin" extract "$work/ours.tar.gz" "$work/x" | cut -d' ' -f1; done | best)
peer=$(for _ in $(seq "$runs"); do rm -rf "$work/x"; mkdir "$work/x"; sync; peer_time "tar -C '$work/x' -xzf '$work/ours.tar.gz'"; done | best)
row "extract tar+gzip (tar -xzf)" "$ours" "$peer" "" ""
