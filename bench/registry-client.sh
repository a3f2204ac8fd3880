#!/usr/bin/env bash
# Registry client benchmark: push and pull of a 10-layer, 1 GiB image (random data) to and from
# the local reference registry (Debian's docker-registry), drydock vs skopeo copy (and docker
# push/pull when a dockerd answers on /var/run/docker.sock), in the same run; then a second
# push of the same image (HEAD requests only).
#
#   bench/registry-client.sh [TOTAL_BYTES] [LAYERS]
#
# Needs: docker-registry, skopeo; optional: docker.io (a running dockerd).
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-$((1 << 30))}
LAYERS=${2:-10}
PROFILE=bench-fast

for tool in docker-registry skopeo; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install docker-registry skopeo)"; exit 1; }
done

# The driver makes the library calls `drydock push`/`drydock pull` make (same client, same
# defaults), without building the whole CLI.
cargo build -q --profile "$PROFILE" -p drydock-registry-client --example registry_bench
BENCH=$PWD/target/$PROFILE/examples/registry_bench

WORK=$(mktemp -d /tmp/drydock-bench.XXXXXX)
REG_PID=
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A fresh registry per measurement, so nobody finds the others' blobs.
start_registry() {
  [ -n "$REG_PID" ] && { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; }
  PORT=$(free_port)
  local dir="$WORK/registry-$PORT"
  mkdir -p "$dir"
  cat >"$dir/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT, secret: bench}
YAML
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "registry did not start"; cat "$dir/log"; exit 1
}

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }

STORE=$WORK/store
echo "building a $LAYERS-layer image of $TOTAL bytes ..."
"$BENCH" make "$STORE" bench/image:1 "$LAYERS" "$TOTAL" >/dev/null
OCI=$STORE.oci
sync

# --- push ---
start_registry
t0=$(now); "$BENCH" push "$STORE" bench/image:1 "127.0.0.1:$PORT/bench/drydock:1" >/dev/null; t1=$(now)
PUSH_DRYDOCK=$(elapsed "$t0" "$t1")
t0=$(now); "$BENCH" push "$STORE" bench/image:1 "127.0.0.1:$PORT/bench/drydock:1" >/dev/null; t1=$(now)
PUSH_AGAIN=$(elapsed "$t0" "$t1")
PULL_FROM=$PORT

# skopeo gets its own fresh registry; the drydock one stays up for the pulls.
DRYDOCK_REG_PID=$REG_PID; REG_PID=
start_registry
t0=$(now); skopeo copy -q --dest-tls-verify=false "oci:$OCI:bench" "docker://127.0.0.1:$PORT/bench/skopeo:1"; t1=$(now)
PUSH_SKOPEO=$(elapsed "$t0" "$t1")
kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true
REG_PID=$DRYDOCK_REG_PID; PORT=$PULL_FROM

# --- pull (both from the registry drydock pushed to) ---
sync
t0=$(now); "$BENCH" pull "$WORK/pull-store" "127.0.0.1:$PORT/bench/drydock:1" >/dev/null; t1=$(now)
PULL_DRYDOCK=$(elapsed "$t0" "$t1")
t0=$(now); skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$PORT/bench/drydock:1" "oci:$WORK/skopeo-pull:bench"; t1=$(now)
PULL_SKOPEO=$(elapsed "$t0" "$t1")

# --- docker, when a daemon answers ---
DOCKER=/usr/bin/docker
PUSH_DOCKER=; PULL_DOCKER=
if [ -x "$DOCKER" ] && "$DOCKER" info >/dev/null 2>&1; then
  skopeo copy -q "oci:$OCI:bench" "docker-daemon:127.0.0.1:$PULL_FROM/bench/docker:1"
  DRYDOCK_REG_PID=$REG_PID; REG_PID=; start_registry
  "$DOCKER" tag "127.0.0.1:$PULL_FROM/bench/docker:1" "127.0.0.1:$PORT/bench/docker:1"
  t0=$(now); "$DOCKER" push -q "127.0.0.1:$PORT/bench/docker:1" >/dev/null; t1=$(now)
  PUSH_DOCKER=$(elapsed "$t0" "$t1")
  "$DOCKER" rmi -f "127.0.0.1:$PORT/bench/docker:1" "127.0.0.1:$PULL_FROM/bench/docker:1" >/dev/null 2>&1 || true
  t0=$(now); "$DOCKER" pull -q "127.0.0.1:$PORT/bench/docker:1" >/dev/null; t1=$(now)
  PULL_DOCKER=$(elapsed "$t0" "$t1")
  "$DOCKER" rmi -f "127.0.0.1:$PORT/bench/docker:1" >/dev/null 2>&1 || true
  kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true; REG_PID=$DRYDOCK_REG_PID
fi

echo
echo "image: $LAYERS layers, $TOTAL bytes (random), local docker-registry"
printf '%-28s %8s s\n' "push drydock" "$PUSH_DRYDOCK" "push skopeo copy" "$PUSH_SKOPEO"
printf '%-28s %8s   (drydock/skopeo, target <= 0.7)\n' "push ratio" "$(ratio "$PUSH_DRYDOCK" "$PUSH_SKOPEO")"
printf '%-28s %8s s\n' "pull drydock" "$PULL_DRYDOCK" "pull skopeo copy" "$PULL_SKOPEO"
printf '%-28s %8s   (drydock/skopeo, target <= 0.7)\n' "pull ratio" "$(ratio "$PULL_DRYDOCK" "$PULL_SKOPEO")"
printf '%-28s %8s s   (HEAD requests only, target <= 0.5 s)\n' "second push drydock" "$PUSH_AGAIN"
if [ -n "$PUSH_DOCKER" ]; then
  printf '%-28s %8s s   ratio %s\n' "push docker" "$PUSH_DOCKER" "$(ratio "$PUSH_DRYDOCK" "$PUSH_DOCKER")"
  printf '%-28s %8s s   ratio %s\n' "pull docker" "$PULL_DOCKER" "$(ratio "$PULL_DRYDOCK" "$PULL_DOCKER")"
else
  echo "docker push/pull: skipped (no dockerd answering on /var/run/docker.sock)"
fi
