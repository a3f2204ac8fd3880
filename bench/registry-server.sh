#!/usr/bin/env bash
# Registry benchmark: drydock's embedded registry against Debian's docker-registry (the CNCF
# reference registry), same machine, same run, same load generator.
#
#   bench/registry-server.sh            # 1 GiB images, clients 1 4 16
#   IMAGE_MB=256 CLIENTS="1 4" bench/registry-server.sh
#
# Measures push and pull throughput (each client pushes, then pulls, its own image of IMAGE_MB
# in 4 layers), manifest HEAD/GET latency under LAT_CONCURRENCY concurrent requests (p50, p99),
# and resident memory idle (VmRSS after start) and under load (VmHWM, the peak). Prints a table
# and the ratios drydock/reference (throughput: higher is better; latency and memory: lower).
# Needs: cargo, docker-registry (apt-get install docker-registry). Traffic stays on 127.0.0.1.
set -euo pipefail

IMAGE_MB=${IMAGE_MB:-1024}
CLIENTS=${CLIENTS:-"1 4 16"}
LAT_CONCURRENCY=${LAT_CONCURRENCY:-200}
LAT_TOTAL=${LAT_TOTAL:-40000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/drydock-registry-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v docker-registry >/dev/null || { echo "docker-registry not installed (apt-get install docker-registry)" >&2; exit 1; }
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p drydock-registry-server --examples)
SERVE=$TARGET_DIR/release/examples/registry-serve
LOAD=$TARGET_DIR/release/examples/registry-bench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -fs -o /dev/null "http://$1/v2/" && return 0; sleep 0.1; done; echo "server $1 did not start" >&2; exit 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

declare -A R
run_one() { # name
  local name=$1 port pid
  port=$(free_port)
  mkdir -p "$WORK/$name"
  if [ "$name" = drydock ]; then
    "$SERVE" "127.0.0.1:$port" "$WORK/$name/storage" 2>"$WORK/$name.log" &
  else
    cat > "$WORK/$name/config.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  filesystem: { rootdirectory: $WORK/$name/storage }
  delete: { enabled: true }
http: { addr: 127.0.0.1:$port }
YML
    docker-registry serve "$WORK/$name/config.yml" 2>"$WORK/$name.log" &
  fi
  pid=$!
  PIDS+=("$pid")
  wait_up "127.0.0.1:$port"
  sleep 1
  R[$name,rss_idle]=$(rss_kb "$pid")
  local url="http://127.0.0.1:$port"
  for n in $CLIENTS; do
    # fresh repositories per round: each round pushes new data
    out=$("$LOAD" push "$url" "$n" "$IMAGE_MB")
    R[$name,push,$n]=$(field "$out" mib_per_s)
    out=$("$LOAD" pull "$url" "$n" "$IMAGE_MB")
    R[$name,pull,$n]=$(field "$out" mib_per_s)
    rm -rf "$WORK/$name/storage"/* 2>/dev/null || true
    # the registry keeps running: delete nothing else; storage re-created on demand
    if [ "$name" = drydock ]; then mkdir -p "$WORK/$name/storage/content/blobs/sha256" "$WORK/$name/storage/content/ingest" "$WORK/$name/storage/repositories" "$WORK/$name/storage/uploads" "$WORK/$name/storage/auth"; fi
  done
  out=$("$LOAD" latency "$url" "$LAT_CONCURRENCY" "$LAT_TOTAL")
  R[$name,p50]=$(field "$out" p50_ms)
  R[$name,p99]=$(field "$out" p99_ms)
  R[$name,rps]=$(field "$out" rps)
  R[$name,rss_load]=$(hwm_kb "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_one drydock
run_one reference

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }
printf '%-28s %14s %14s %8s\n' "metric" "drydock" "docker-registry" "ratio"
for n in $CLIENTS; do
  printf '%-28s %14s %14s %8s\n' "push MiB/s, $n clients" "${R[drydock,push,$n]}" "${R[reference,push,$n]}" "$(ratio "${R[drydock,push,$n]}" "${R[reference,push,$n]}")"
  printf '%-28s %14s %14s %8s\n' "pull MiB/s, $n clients" "${R[drydock,pull,$n]}" "${R[reference,pull,$n]}" "$(ratio "${R[drydock,pull,$n]}" "${R[reference,pull,$n]}")"
done
printf '%-28s %14s %14s %8s\n' "manifest p50 ms (c=$LAT_CONCURRENCY)" "${R[drydock,p50]}" "${R[reference,p50]}" "$(ratio "${R[drydock,p50]}" "${R[reference,p50]}")"
printf '%-28s %14s %14s %8s\n' "manifest p99 ms (c=$LAT_CONCURRENCY)" "${R[drydock,p99]}" "${R[reference,p99]}" "$(ratio "${R[drydock,p99]}" "${R[reference,p99]}")"
printf '%-28s %14s %14s %8s\n' "manifest requests/s" "${R[drydock,rps]}" "${R[reference,rps]}" "$(ratio "${R[drydock,rps]}" "${R[reference,rps]}")"
printf '%-28s %14s %14s %8s\n' "RSS idle KiB" "${R[drydock,rss_idle]}" "${R[reference,rss_idle]}" "$(ratio "${R[drydock,rss_idle]}" "${R[reference,rss_idle]}")"
printf '%-28s %14s %14s %8s\n' "RSS peak under load KiB" "${R[drydock,rss_load]}" "${R[reference,rss_load]}" "$(ratio "${R[drydock,rss_load]}" "${R[reference,rss_load]}")"
echo "targets: throughput ratio >= 1.2, p99 ratio <= 0.5, memory ratio <= 0.5"
