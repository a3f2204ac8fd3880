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

# Each side runs under /usr/bin/time (wall and CPU seconds, children included) at the same
# priority; on a machine shared with other work, LAYER_NICE=-10 (as root) keeps the comparison
# from being decided by whoever else is running.
nice_cmd=()
[ -n "${LAYER_NICE:-}" ] && nice_cmd=(nice -n "$LAYER_NICE")
measure() { # command string -> "wall cpu"
  local out
  out=$( { "${nice_cmd[@]}" /usr/bin/time -f 'TIME %e %U %S' bash -c "$1" >/dev/null; } 2>&1 | grep '^TIME' | tail -1)
  awk '{ printf "%.3f %.2f\n", $2, $3 + $4 }' <<<"$out"
}
best() { sort -n | head -1; }

printf 'tree: %s (%d MiB, %d paths), %d cores, best of %d, load %s\n' "$tree" $((size >> 20)) "$files" "$(nproc)" "$runs" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-32s %9s %9s %6s  %8s %8s %6s  %9s %9s\n' "figure" "drydock" "peer" "ratio" "cpu-ours" "cpu-peer" "ratio" "MiB-ours" "MiB-peer"
row() { # name "wall cpu"(ours) "wall cpu"(peer) ours_file peer_file
  read -r ow oc <<<"$2"
  read -r pw pc <<<"$3"
  local sizes=("" "")
  [ -n "$4" ] && sizes=("$(mib "$4")" "$(mib "$5")")
  awk -v n="$1" -v ow="$ow" -v pw="$pw" -v oc="$oc" -v pc="$pc" -v so="${sizes[0]}" -v sp="${sizes[1]}" \
    'BEGIN { printf "%-32s %8.2fs %8.2fs %6.2f  %7.1fs %7.1fs %6.2f  %9s %9s\n", n, ow, pw, ow / pw, oc, pc, oc / pc, so, sp }'
}
mib() { awk -v s="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", s / 1048576 }'; }

# tar+gzip
ours=$(for _ in $(seq "$runs"); do measure "'$bin' create '$tree' '$work/ours.tar.gz' gzip"; done | best)
peer=$(for _ in $(seq "$runs"); do measure "tar -C '$tree' -cf - . | pigz -6 > '$work/peer.tar.gz'"; done | best)
row "create tar+gzip (| pigz -6)" "$ours" "$peer" "$work/ours.tar.gz" "$work/peer.tar.gz"

# tar+zstd
ours=$(for _ in $(seq "$runs"); do measure "'$bin' create '$tree' '$work/ours.tar.zst' zstd"; done | best)
peer=$(for _ in $(seq "$runs"); do measure "tar -C '$tree' -cf - . | zstd -q -3 -T0 > '$work/peer.tar.zst'"; done | best)
row "create tar+zstd (| zstd -3 -T0)" "$ours" "$peer" "$work/ours.tar.zst" "$work/peer.tar.zst"
rm -f "$work/peer.tar.zst" "$work/ours.tar.zst"

# extraction of the same gzip layer (ours), into fresh directories
fresh() { rm -rf "$work/x"; mkdir "$work/x"; sync; }
ours=$(for _ in $(seq "$runs"); do fresh; measure "'$bin' extract '$work/ours.tar.gz' '$work/x'"; done | best)
peer=$(for _ in $(seq "$runs"); do fresh; measure "tar -C '$work/x' -xzf '$work/ours.tar.gz'"; done | best)
row "extract tar+gzip (tar -xzf)" "$ours" "$peer" "" ""
echo "(drydock's create also computes sha256 of the tar and of the blob; ratio = drydock / peer)"
