#!/usr/bin/env bash
# Sandbox benchmarks, beside runc and docker, in the same run on this machine (needs root):
#   start-to-exit of `true` in a busybox root file system (Debian's busybox-static), median of
#   SANDBOX_RUNS (default 50; docker SANDBOX_DOCKER_RUNS, default 20):
#     drydock sandbox run (CLI)   vs `runc run` on the same rootfs (Debian's runc)
#                                 vs `docker run --rm` of an image imported from the same rootfs
#   plus the process-model numbers behind ARCHITECTURE-sandbox.md: the library's run() with the
#   drydock binary re-executed as init vs the tiny dedicated init binary.
#   a RUN that writes 10,000 small files: drydock (command + layer tar with its diff ID) vs
#   `docker build` of the same step (legacy builder; command + commit).
# Ratios are drydock / peer (below 1.0: drydock is faster). Not a test: nothing fails on a figure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/sandbox.sh needs root"; exit 1; }
for tool in busybox runc; do
  command -v "$tool" >/dev/null || scripts/setup-system.sh
done
N="${SANDBOX_RUNS:-50}"
ND="${SANDBOX_DOCKER_RUNS:-20}"
[ -n "${SANDBOX_BENCH_NO_BUILD:-}" ] || cargo build --profile bench-fast --quiet -p drydock-sandbox -p drydock-cli
helper=$PWD/target/bench-fast/drydock-sandbox-init
drydock=$PWD/target/bench-fast/drydock
docker=/usr/bin/docker # /usr/local/bin/docker is another client

work=$(mktemp -d /var/tmp/drydock-bench-sandbox.XXXXXX)
dockerd_pid=""
cleanup() {
  "$docker" rm -f drydock-bench-10k-c >/dev/null 2>&1 || true
  "$docker" rmi -f drydock-bench-bb drydock-bench-10k >/dev/null 2>&1 || true
  [ -n "$dockerd_pid" ] && kill "$dockerd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The busybox root file system, shared by every contender.
bundle=$work/bundle
rootfs=$bundle/rootfs
mkdir -p "$rootfs"/{bin,etc,tmp,proc,sys,dev,root}
chmod 1777 "$rootfs/tmp"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"
touch "$rootfs/etc/hosts" "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
timed() { # runs a command N times, prints the median microseconds
  local n=$1; shift
  "$helper" time "$n" -- "$@" | median
}

# runc: the same rootfs as an OCI bundle, running /bin/true, no terminal.
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"), indent=1)
EOF

# docker: start dockerd if none is running, import the same rootfs.
if ! "$docker" info >/dev/null 2>&1; then
  dockerd >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 100); do "$docker" info >/dev/null 2>&1 && break; sleep 0.2; done
fi
have_docker=0
if "$docker" info >/dev/null 2>&1; then
  tar -C "$rootfs" -c . | "$docker" import - drydock-bench-bb >/dev/null
  "$docker" run --rm drydock-bench-bb /bin/true && have_docker=1
fi

state=$work/state
printf 'start-to-exit of `true` in busybox, median of %d (docker %d), %d cores\n' "$N" "$ND" "$(nproc)"
# Warm up every contender once (page cache, dentries).
"$drydock" sandbox run --rootfs "$rootfs" --state "$state" -- /bin/true
runc run --bundle "$bundle" drydock-bench-warm >/dev/null

# Interleaved: every round runs each contender once, so load from other work on a shared
# machine falls on all of them alike.
: > "$work/t.txt"
for i in $(seq "$N"); do
  printf 'drydock %s\n' "$("$helper" time 1 -- "$drydock" sandbox run --rootfs "$rootfs" --state "$state" -- /bin/true)" >> "$work/t.txt"
  printf 'helper %s\n' "$("$helper" time 1 -- "$helper" run --rootfs "$rootfs" --state "$state" --quiet -- /bin/true)" >> "$work/t.txt"
  printf 'runc %s\n' "$("$helper" time 1 -- runc run --bundle "$bundle" drydock-bench)" >> "$work/t.txt"
  if [ "$have_docker" = 1 ] && [ "$i" -le "$ND" ]; then
    printf 'docker %s\n' "$("$helper" time 1 -- "$docker" run --rm drydock-bench-bb /bin/true)" >> "$work/t.txt"
  fi
done
pick() { awk -v k="$1" '$1 == k { print $2 }' "$work/t.txt" | median; }
d_cli=$(pick drydock); h_cli=$(pick helper); runc_t=$(pick runc)
# The library in one process, alternating the init binary run by run.
DRYDOCK_SANDBOX_BENCH_INITS="$drydock:$helper" "$helper" run --rootfs "$rootfs" --state "$state" --quiet \
  --bench $((2 * N)) -- /bin/true > "$work/lib.txt"
lib_drydock=$(awk -v k="$drydock" '$1 == k { print $2 }' "$work/lib.txt" | median)
lib_helper=$(awk -v k="$helper" '$1 == k { print $2 }' "$work/lib.txt" | median)
printf '%-58s %10s\n' "contender" "median ms"
printf '%-58s %10s\n' "drydock sandbox run (CLI, drydock re-exec'd as init)" "$(ms "$d_cli")"
printf '%-58s %10s\n' "drydock-sandbox-init run (CLI, tiny init binary)" "$(ms "$h_cli")"
printf '%-58s %10s\n' "library run(), init = drydock binary re-exec" "$(ms "$lib_drydock")"
printf '%-58s %10s\n' "library run(), init = tiny dedicated binary" "$(ms "$lib_helper")"
printf '%-58s %10s\n' "runc run (same rootfs)" "$(ms "$runc_t")"
if [ "$have_docker" = 1 ]; then
  docker_t=$(pick docker)
  printf '%-58s %10s\n' "docker run --rm (same rootfs, imported)" "$(ms "$docker_t")"
fi
printf 'load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'ratio drydock CLI / runc:   %s (target <= 0.5)\n' "$(ratio "$d_cli" "$runc_t")"
printf 'ratio drydock library run() / runc: %s\n' "$(ratio "$lib_drydock" "$runc_t")"
[ "$have_docker" = 1 ] && printf 'ratio drydock CLI / docker: %s (target <= 0.1)\n' "$(ratio "$d_cli" "$docker_t")"
printf 'drydock binary sizes: drydock %s MiB, drydock-sandbox-init %s MiB\n' \
  "$(awk -v s="$(stat -c %s "$drydock")" 'BEGIN { printf "%.1f", s / 1048576 }')" \
  "$(awk -v s="$(stat -c %s "$helper")" 'BEGIN { printf "%.1f", s / 1048576 }')"

# A RUN writing 10,000 small files, then the layer.
script='mkdir /data && i=0 && while [ $i -lt 10000 ]; do echo $i > /data/f$i; i=$((i+1)); done'
echo
echo 'RUN writing 10,000 small files (command + layer), best of 3'
best_total=""
for _ in 1 2 3; do
  t0=$(date +%s%N)
  out=$("$helper" run --rootfs "$rootfs" --state "$state" --layer-out "$work/layer.tar" -- /bin/sh -c "$script" 2>&1)
  t1=$(date +%s%N)
  total=$(( (t1 - t0) / 1000 ))
  layer_ms=$(sed -n 's/.*layer \([0-9]*\) ms.*/\1/p' <<<"$out")
  if [ -z "$best_total" ] || [ "$total" -lt "$best_total" ]; then best_total=$total; best_layer=$layer_ms; fi
done
printf 'drydock: %s ms total, of which layer tar + diff ID %s ms (%s MiB)\n' "$(ms "$best_total")" "$best_layer" \
  "$(awk -v s="$(stat -c %s "$work/layer.tar")" 'BEGIN { printf "%.1f", s / 1048576 }')"
if [ "$have_docker" = 1 ]; then
  # docker's equivalent of producing the layer: commit of the container that ran the step.
  best_commit=""
  for _ in 1 2 3; do
    "$docker" rm -f drydock-bench-10k-c >/dev/null 2>&1 || true
    "$docker" run --name drydock-bench-10k-c drydock-bench-bb /bin/sh -c "$script"
    t0=$(date +%s%N)
    "$docker" commit drydock-bench-10k-c drydock-bench-10k >/dev/null
    t1=$(date +%s%N)
    "$docker" rm -f drydock-bench-10k-c >/dev/null
    "$docker" rmi -f drydock-bench-10k >/dev/null
    c=$(( (t1 - t0) / 1000 ))
    if [ -z "$best_commit" ] || [ "$c" -lt "$best_commit" ]; then best_commit=$c; fi
  done
  printf 'docker commit of the same change (layer only): %s ms\n' "$(ms "$best_commit")"
  printf 'ratio drydock layer / docker commit: %s\n' "$(ratio "$((best_layer * 1000))" "$best_commit")"
  mkdir -p "$work/ctx"
  printf 'FROM drydock-bench-bb\nRUN %s\n' "$script" > "$work/ctx/Dockerfile"
  best_docker=""
  for _ in 1 2 3; do
    t0=$(date +%s%N)
    DOCKER_BUILDKIT=0 "$docker" build -q --no-cache -t drydock-bench-10k "$work/ctx" >/dev/null 2>&1
    t1=$(date +%s%N)
    d=$(( (t1 - t0) / 1000 ))
    if [ -z "$best_docker" ] || [ "$d" -lt "$best_docker" ]; then best_docker=$d; fi
  done
  printf 'docker build (legacy builder, same RUN, command + commit): %s ms\n' "$(ms "$best_docker")"
  printf 'ratio drydock (command + layer) / docker build: %s\n' "$(ratio "$best_total" "$best_docker")"
fi
