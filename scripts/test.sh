#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, formatting, lints, tests, short fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-system.sh
export CI="${CI:-true}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo nextest"
cargo nextest run --workspace --profile ci
if [ -x fuzz/run-short.sh ]; then
  echo "== fuzz (bounded)"
  fuzz/run-short.sh "${FUZZ_SECONDS:-20}"
fi
