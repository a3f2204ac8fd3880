#!/usr/bin/env bash
# Dockerfile frontend: parse + check + plan of a generated 2,000-line Dockerfile and of the 50
# largest corpus Dockerfiles. Target: well under 1 ms per 100 lines. No peer tool: BuildKit's
# frontend is not callable on its own here.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --profile bench-fast -p drydock-frontend --example bench -- "${1:-20}"
