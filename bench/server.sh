#!/usr/bin/env bash
# drydock serve benchmark (loopback only, bounded in count and time):
#   - webhook-to-job-start latency, p50 and p99: signed GitHub push deliveries sent one at a
#     time; latency = the job's recorded start - the moment the delivery was sent;
#   - sustained deliveries per second: DELIVERIES signed deliveries from 16 client threads,
#     each starting a run (runs queue; the figure is how fast deliveries are accepted);
#   - resident memory (VmRSS) of an idle server, and of one with 10,000 stored runs after
#     listing them;
#   - UI run page render time with a 100,000-line log (the run page, and the job's full log
#     page rendered as HTML).
# Targets: p99 webhook-to-start < 200 ms, idle memory < 50 MB.
#
#   bench/server.sh
#   LATENCY_N=500 DELIVERIES=3000 bench/server.sh
# Needs: cargo, git, python3, curl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${PROFILE:-bench-fast}
(cd "$ROOT" && cargo build --profile "$PROFILE" -q -p drydock-cli)
export DRYDOCK_BIN=$TARGET_DIR/$PROFILE/drydock
export LATENCY_N=${LATENCY_N:-200}
export DELIVERIES=${DELIVERIES:-2000}
exec python3 "$ROOT/bench/server.py"
