#!/usr/bin/env bash
# drydock build vs BuildKit (Debian's docker.io, DOCKER_BUILDKIT=1), in the same run on this
# machine. Scenarios: tiny (busybox + a few RUN), multi-stage compile (C built in a Debian
# stage with gcc, copied into scratch), large context (20,000 small files + 3 x 100 MB),
# 30 RUN layers. Each: cold (no build cache; base images present), warm (no change), one
# source file changed. Times are wall clock; memory is drydock's peak RSS (/usr/bin/time -v)
# vs the peak RSS of dockerd (sampled) plus the docker client's. Ratio = drydock / BuildKit
# (below 1.0: drydock is faster). Targets: cold <= 1.0, warm <= 0.25, one-file <= 0.5,
# memory <= 1.0. Buildah (Debian's, `buildah bud --layers`, overlay storage) is a third column
# when it is installed (BENCH_BUILDAH=0 leaves it out); its memory is its own peak RSS.
# Not a test: nothing fails on a slow figure.
#   BENCH_SCENARIOS="tiny compile large layers30" bench/build.sh
#   DRYDOCK_BIN=path/to/drydock skips the release build; BENCH_RUNS=N (default 3): each figure
#   is the best of N rounds (this machine is shared: the best is the least disturbed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scenarios=(${BENCH_SCENARIOS:-tiny compile large layers30})
if [ -z "${DRYDOCK_BIN:-}" ]; then
  cargo build --release --quiet -p drydock-cli
fi
dd="${DRYDOCK_BIN:-$root/target/release/drydock}"
docker=/usr/bin/docker
[ -x "$docker" ] || { echo "build bench: Debian's docker.io is missing (apt-get install docker.io)"; exit 1; }
$docker version >/dev/null 2>&1 || { (dockerd >/tmp/drydock-bench-dockerd.log 2>&1 &); for _ in $(seq 60); do $docker version >/dev/null 2>&1 && break; sleep 1; done; }
work=$(mktemp -d /var/tmp/drydock-bench-build.XXXXXX)
buildah=""
if [ "${BENCH_BUILDAH:-1}" != 0 ] && command -v buildah >/dev/null; then buildah=$(command -v buildah); fi
trap 'rm -rf "$work"; $docker rmi -f bench/out:bk bench/gcc:latest >/dev/null 2>&1 || true
  [ -z "$buildah" ] || { $buildah rmi -f bench/out:bh bench/gcc:latest >/dev/null 2>&1; $buildah rmi --prune >/dev/null 2>&1; } || true' EXIT
export DRYDOCK_HOME="$work/home"
unset SOURCE_DATE_EPOCH

# Base images: busybox and debian from drydock kit, loaded into the engine too; a gcc image
# for the compile scenario built once (by drydock) and loaded into both.
"$dd" kit busybox >/dev/null
"$dd" copy busybox:latest "docker-archive:$work/busybox.tar" >/dev/null
$docker load -q -i "$work/busybox.tar" >/dev/null
[ -z "$buildah" ] || $buildah pull -q "docker-archive:$work/busybox.tar" >/dev/null
if [[ " ${scenarios[*]} " == *" compile "* ]]; then
  deb=/var/tmp/drydock-test-debian-bookworm.tar
  if [ ! -f "$deb" ]; then
    "$dd" kit debian >/dev/null
    "$dd" copy debian:bookworm "docker-archive:$deb.partial" >/dev/null && mv "$deb.partial" "$deb"
  fi
  "$dd" copy "docker-archive:$deb" local:debian:bookworm >/dev/null
  mkdir -p "$work/gcc"
  printf 'FROM debian:bookworm\nRUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null && rm -rf /var/lib/apt/lists/*\n' > "$work/gcc/Dockerfile"
  "$dd" build -q -t bench/gcc:latest "$work/gcc" >/dev/null
  "$dd" copy bench/gcc:latest "docker-archive:$work/gcc.tar" >/dev/null
  $docker load -q -i "$work/gcc.tar" >/dev/null
  [ -z "$buildah" ] || $buildah pull -q "docker-archive:$work/gcc.tar" >/dev/null
fi

now() { date +%s.%N; }
# Runs a drydock build; prints "seconds maxrss_kib".
dd_build() { # dir
  local t0 t1 rss
  t0=$(now)
  /usr/bin/time -v -o "$work/time.txt" "$dd" build -q -t bench/out:dd "$1" >/dev/null 2>"$work/dd.err" || { cat "$work/dd.err" >&2; return 1; }
  t1=$(now)
  rss=$(awk -F: '/Maximum resident/ { gsub(/ /, "", $2); print $2 }' "$work/time.txt")
  awk -v a="$t0" -v b="$t1" -v r="$rss" 'BEGIN { printf "%.3f %d\n", b - a, r }'
}
# Runs a BuildKit build; prints "seconds peak_rss_kib" (dockerd sampled + client).
bk_build() { # dir
  local pid t0 t1 sampler crss drss
  pid=$(pidof dockerd | awk '{print $1}')
  ( peak=0; while :; do r=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0); [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" > "$work/dockerd.peak"; sleep 0.05; done ) &
  sampler=$!
  echo 0 > "$work/dockerd.peak"
  t0=$(now)
  DOCKER_BUILDKIT=1 /usr/bin/time -v -o "$work/time.txt" $docker build -q -t bench/out:bk "$1" >/dev/null 2>"$work/bk.err" || { kill $sampler; cat "$work/bk.err" >&2; return 1; }
  t1=$(now)
  kill $sampler 2>/dev/null; wait $sampler 2>/dev/null || true
  crss=$(awk -F: '/Maximum resident/ { gsub(/ /, "", $2); print $2 }' "$work/time.txt")
  drss=$(cat "$work/dockerd.peak")
  awk -v a="$t0" -v b="$t1" -v r="$((crss + drss))" 'BEGIN { printf "%.3f %d\n", b - a, r }'
}

# Runs a buildah build (--layers: its cache); prints "seconds maxrss_kib".
bh_build() { # dir
  local t0 t1 rss
  t0=$(now)
  /usr/bin/time -v -o "$work/time.txt" "$buildah" bud --layers --pull-never -q -t bench/out:bh "$1" >/dev/null 2>"$work/bh.err" || { cat "$work/bh.err" >&2; return 1; }
  t1=$(now)
  rss=$(awk -F: '/Maximum resident/ { gsub(/ /, "", $2); print $2 }' "$work/time.txt")
  awk -v a="$t0" -v b="$t1" -v r="$rss" 'BEGIN { printf "%.3f %d\n", b - a, r }'
}
bh_reset() { # drops buildah's layer cache (the untagged intermediate images), keeps the bases
  $buildah rmi -f bench/out:bh >/dev/null 2>&1 || true
  $buildah rmi --prune >/dev/null 2>&1 || true
}

rows=()
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
row() { # scenario phase dd bk [bh]
  local ddt ddm bkt bkm bht bhm extra=""
  read -r ddt ddm <<<"$3"; read -r bkt bkm <<<"$4"
  if [ -n "${5:-}" ]; then
    read -r bht bhm <<<"$5"
    extra=$(printf ' | %8.2fs %6s %8.0f %6s' "$bht" "$(ratio "$ddt" "$bht")" "$((bhm / 1024))" "$(ratio "$ddm" "$bhm")")
  fi
  rows+=("$(printf '%-10s %-9s %8.2fs %8.2fs %6s %8.0f %8.0f %6s%s' "$1" "$2" "$ddt" "$bkt" \
    "$(ratio "$ddt" "$bkt")" "$((ddm / 1024))" "$((bkm / 1024))" "$(ratio "$ddm" "$bkm")" "$extra")")
  printf '%s\n' "${rows[-1]}"
}

setup() { # scenario dir
  local s=$1 d=$2
  mkdir -p "$d"
  case $s in
    tiny)
      printf 'FROM busybox\nRUN echo one > /one\nRUN echo two > /two && cat /one /two > /both\nCOPY app.txt /app/\nRUN wc -c /app/app.txt > /app/size\nCMD ["cat", "/app/size"]\n' > "$d/Dockerfile"
      echo "hello" > "$d/app.txt" ;;
    compile)
      printf 'FROM bench/gcc AS build\nWORKDIR /src\nCOPY hello.c util.c ./\nRUN gcc -O2 -static -o hello hello.c util.c\nFROM scratch\nCOPY --from=build /src/hello /hello\nENTRYPOINT ["/hello"]\n' > "$d/Dockerfile"
      printf '#include <stdio.h>\nint util(void);\nint main(void) { printf("%%d\\n", util()); return 0; }\n' > "$d/hello.c"
      printf 'int util(void) { return 41; }\n' > "$d/util.c" ;;
    large)
      printf 'FROM busybox\nCOPY . /data\nRUN find /data -type f | wc -l > /count\n' > "$d/Dockerfile"
      mkdir -p "$d/src"
      for i in $(seq 0 199); do mkdir -p "$d/src/d$i"; for j in $(seq 0 99); do echo "file $i $j" > "$d/src/d$i/f$j.txt"; done; done
      for k in 1 2 3; do head -c $((100 << 20)) /dev/urandom > "$d/big$k.bin"; done ;;
    layers30)
      { echo 'FROM busybox'; for i in $(seq 1 30); do echo "RUN echo layer $i > /layer-$i && echo $i >> /all"; done
        echo 'COPY app.txt /app/'; echo 'RUN cat /app/app.txt /all > /final'; } > "$d/Dockerfile"
      echo "v1" > "$d/app.txt" ;;
  esac
}

change() { # scenario dir
  case $1 in
    tiny|layers30) echo "changed $(date +%s%N)" > "$2/app.txt" ;;
    compile) printf 'int util(void) { return %d; }\n' "$(( $(date +%s) % 100 ))" > "$2/util.c" ;;
    large) echo "changed $(date +%s%N)" > "$2/src/d7/f7.txt" ;;
  esac
}

printf '%s\n' "drydock build vs BuildKit ($($docker version --format '{{.Server.Version}}' 2>/dev/null) docker.io), $(nproc) cores"
hdr=$(printf '%-10s %-9s %9s %9s %6s %8s %8s %6s' scenario phase drydock buildkit ratio "dd MiB" "bk MiB" ratio)
[ -z "$buildah" ] || hdr+=$(printf ' | %9s %6s %8s %6s' buildah ratio "bh MiB" ratio)
printf '%s\n' "$hdr"
for s in "${scenarios[@]}"; do
  ctx="$work/ctx-$s"
  setup "$s" "$ctx"
  find "$ctx" -type f -print0 | xargs -0 cat > /dev/null   # page cache warm for both
  declare -A best=()
  keep() { # key "secs rss": the lowest time, with the highest memory seen
    local t m ot om
    read -r t m <<<"$2"
    if [ -z "${best[$1]:-}" ]; then best[$1]="$t $m"; return; fi
    read -r ot om <<<"${best[$1]}"
    awk -v a="$t" -v b="$ot" 'BEGIN { exit !(a < b) }' && ot=$t
    [ "$m" -gt "$om" ] && om=$m
    best[$1]="$ot $om"
  }
  for _ in $(seq "${BENCH_RUNS:-3}"); do
    "$dd" builder prune --all >/dev/null
    $docker builder prune -af >/dev/null
    [ -z "$buildah" ] || bh_reset
    keep dd-cold "$(dd_build "$ctx")"; keep bk-cold "$(bk_build "$ctx")"
    [ -z "$buildah" ] || keep bh-cold "$(bh_build "$ctx")"
    keep dd-warm "$(dd_build "$ctx")"; keep bk-warm "$(bk_build "$ctx")"
    [ -z "$buildah" ] || keep bh-warm "$(bh_build "$ctx")"
    change "$s" "$ctx"
    keep dd-one "$(dd_build "$ctx")"; keep bk-one "$(bk_build "$ctx")"
    [ -z "$buildah" ] || keep bh-one "$(bh_build "$ctx")"
  done
  row "$s" cold "${best[dd-cold]}" "${best[bk-cold]}" "${best[bh-cold]:-}"
  row "$s" warm "${best[dd-warm]}" "${best[bk-warm]}" "${best[bh-warm]:-}"
  row "$s" one-file "${best[dd-one]}" "${best[bk-one]}" "${best[bh-one]:-}"
  unset best
  rm -rf "$ctx"
done
