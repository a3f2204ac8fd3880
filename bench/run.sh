#!/usr/bin/env bash
# Runs every benchmark beside its peer tool on this machine, in this run, and prints ratios
# (drydock / peer; below 1.0 means drydock is faster). Benchmarks are not tests: nothing here
# fails on a slow figure. Pass names to run a subset: bench/run.sh ingest layer
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-system.sh
all=(ingest layer sandbox registry-client registry-server frontend build pipeline server)
selected=("${@:-${all[@]}}")
for name in "${selected[@]}"; do
  script="bench/$name.sh"
  if [ -x "$script" ]; then
    echo "== $name"
    "$script" || echo "!! $name failed"
  else
    echo "== $name: no harness yet ($script)"
  fi
done
