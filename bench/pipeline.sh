#!/usr/bin/env bash
# Pipeline engine benchmarks (needs root for the sandbox), in the same run on this machine:
#   1. an empty job in a busybox image, start to finish, vs `docker run --rm busybox true`
#      (Debian's docker.io, /usr/bin/docker; the same busybox image, loaded from drydock's
#      store): `drydock run` as a whole (process start, git, database, workspace, sandbox) and
#      the job alone as the engine records it; median of PIPELINE_RUNS (default 20).
#   2. a 200-job DAG of empty host-shell jobs (10 layers of 20, each job needing two of the
#      layer before): total wall time and per-job overhead, sequential (--jobs 1) and with
#      --jobs = cores; the per-job scheduling overhead is the wall time per job minus what the
#      job's shell itself costs (`bash -c true` measured here).
# Ratios are drydock / peer (below 1.0: drydock is faster). Not a test: nothing fails on a figure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/pipeline.sh needs root"; exit 1; }
command -v busybox >/dev/null || scripts/setup-system.sh
N="${PIPELINE_RUNS:-20}"
[ -n "${PIPELINE_BENCH_NO_BUILD:-}" ] || cargo build --profile bench-fast --quiet -p drydock-cli
drydock=$PWD/target/bench-fast/drydock
docker=/usr/bin/docker # /usr/local/bin/docker is another client

work=$(mktemp -d /var/tmp/drydock-bench-pipeline.XXXXXX)
dockerd_pid=""
cleanup() {
  [ -n "$dockerd_pid" ] && kill "$dockerd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export DRYDOCK_HOME=$work/home

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
now_us() { echo $(( $(date +%s%N) / 1000 )); }
json_ms() { # the first "$2": N in file $1
  grep -o "\"$2\": *[0-9]*" "$1" | head -1 | grep -o '[0-9]*$'
}

git_repo() { # dir, then commits what is in it
  git -C "$1" init -q -b main
  git -C "$1" add -A
  git -C "$1" -c user.name=bench -c user.email=bench@example.invalid commit -q -m bench
}

"$drydock" kit busybox >/dev/null

# 1. An empty job in busybox.
one=$work/one
mkdir -p "$one"
cat >"$one/drydock.yml" <<'EOF'
jobs:
  empty:
    image: busybox
    steps:
      - run: "true"
EOF
git_repo "$one"

if ! "$docker" info >/dev/null 2>&1; then
  dockerd >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 100); do "$docker" info >/dev/null 2>&1 && break; sleep 0.2; done
fi
have_docker=0
if "$docker" info >/dev/null 2>&1; then
  "$drydock" copy local:busybox:latest "docker-archive:$work/busybox.tar:busybox:latest" >/dev/null
  "$docker" load -i "$work/busybox.tar" >/dev/null
  "$docker" run --rm busybox true && have_docker=1
fi

# Warm up once (snapshot extraction, page cache).
"$drydock" run "$one" --json >/dev/null 2>&1
: >"$work/t.txt"
for i in $(seq "$N"); do
  t0=$(now_us)
  "$drydock" run "$one" --json >"$work/one.json" 2>/dev/null
  t1=$(now_us)
  printf 'cli %s\n' $((t1 - t0)) >>"$work/t.txt"
  # The job as the engine measured it (ms in the summary: "duration_ms" of the job).
  job_ms=$(grep -o '"duration_ms": *[0-9]*' "$work/one.json" | head -1 | grep -o '[0-9]*$')
  printf 'job %s\n' $((job_ms * 1000)) >>"$work/t.txt"
  if [ "$have_docker" = 1 ]; then
    t0=$(now_us)
    "$docker" run --rm busybox true
    t1=$(now_us)
    printf 'docker %s\n' $((t1 - t0)) >>"$work/t.txt"
  fi
done
pick() { awk -v k="$1" '$1 == k { print $2 }' "$work/t.txt" | median; }
cli=$(pick cli); job=$(pick job)
printf 'empty job in busybox, median of %d, %d cores\n' "$N" "$(nproc)"
printf '%-56s %10s\n' "contender" "median ms"
printf '%-56s %10.1f\n' "drydock run (whole command: git, db, workspace, job)" "$(awk -v u="$cli" 'BEGIN{print u/1000}')"
printf '%-56s %10.1f\n' "  of which the job, start to finish (engine)" "$(awk -v u="$job" 'BEGIN{print u/1000}')"
if [ "$have_docker" = 1 ]; then
  dock=$(pick docker)
  printf '%-56s %10.1f\n' "docker run --rm busybox true" "$(awk -v u="$dock" 'BEGIN{print u/1000}')"
  printf 'ratio drydock job / docker run:          %s (target <= 0.1)\n' "$(ratio "$job" "$dock")"
  printf 'ratio drydock run (command) / docker run: %s\n' "$(ratio "$cli" "$dock")"
fi

# 2. 200 empty host-shell jobs in a DAG.
dag=$work/dag
mkdir -p "$dag"
{
  echo "jobs:"
  for l in $(seq 0 9); do
    for j in $(seq 0 19); do
      echo "  j${l}_${j}:"
      if [ "$l" -gt 0 ]; then
        p=$((l - 1)); a=$j; b=$(((j + 1) % 20))
        echo "    needs: [j${p}_${a}, j${p}_${b}]"
      fi
      echo "    steps:"
      echo "      - run: \"true\""
    done
  done
} >"$dag/drydock.yml"
git_repo "$dag"

# What one empty job's shell costs by itself (the engine runs `bash --noprofile --norc -eo
# pipefail FILE`).
printf 'true\n' >"$work/true.sh"
t0=$(now_us)
for _ in $(seq 200); do bash --noprofile --norc -eo pipefail "$work/true.sh"; done
t1=$(now_us)
shell_us=$(( (t1 - t0) / 200 ))

echo
printf '200-job DAG of empty host-shell jobs (10 layers x 20, 2 needs each), best of 3\n'
printf '%-22s %12s %14s %18s %22s\n' "--jobs" "wall ms" "engine ms" "per job ms" "overhead/job ms"
for par in 1 "$(nproc)"; do
  best=""
  for _ in 1 2 3; do
    t0=$(now_us)
    "$drydock" run "$dag" --jobs "$par" --json >"$work/dag.json" 2>/dev/null
    t1=$(now_us)
    wall=$((t1 - t0))
    if [ -z "$best" ] || [ "$wall" -lt "$best" ]; then
      best=$wall
      engine_ms=$(grep -o '"duration_ms": *[0-9]*' "$work/dag.json" | tail -1 | grep -o '[0-9]*$')
    fi
  done
  grep -q '"status": "success"' "$work/dag.json" || { echo "the DAG run failed"; exit 1; }
  per=$(awk -v w="$best" -v p="$par" 'BEGIN { printf "%.2f", w / 200 / 1000 * p }')
  over=$(awk -v w="$best" -v p="$par" -v s="$shell_us" 'BEGIN { printf "%.2f", (w / 200 * p - s) / 1000 }')
  printf '%-22s %12.1f %14s %18s %22s\n' "$par" "$(awk -v u="$best" 'BEGIN{print u/1000}')" "$engine_ms" "$per" "$over"
done
printf 'bash -c true by itself: %.2f ms (subtracted above); target overhead < 5 ms per job\n' \
  "$(awk -v u="$shell_us" 'BEGIN{print u/1000}')"
printf 'load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
