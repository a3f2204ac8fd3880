#!/usr/bin/env bash
# The main job, end to end on the embedded defaults: the example pipeline (examples/hello) runs
# test -> build -> tag -> push to drydock's embedded registry -> deploy (pull back) -> smoke
# (run the pushed image), then a fresh DRYDOCK_HOME pulls the pushed digest and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-system.sh
cargo build --bin drydock
DRYDOCK="${CARGO_TARGET_DIR:-$PWD/target}/debug/drydock" exec examples/run-example.sh
