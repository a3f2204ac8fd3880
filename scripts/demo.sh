#!/usr/bin/env bash
# The main job, end to end on the embedded defaults: make a base image from the host, copy it to a
# docker-archive, load and run it in Debian's Docker engine. (The pipeline example replaces this
# once `drydock run` lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-system.sh
cargo build --bin drydock
drydock=$PWD/target/debug/drydock

export DRYDOCK_HOME="${DRYDOCK_HOME:-$(mktemp -d)/drydock}"
echo "== DRYDOCK_HOME=$DRYDOCK_HOME"
"$drydock" kit busybox --tag demo/busybox:latest
"$drydock" images
out=$(mktemp -d)
"$drydock" copy local:demo/busybox:latest "oci:$out/layout:latest"
skopeo inspect "oci:$out/layout:latest" | head -5
"$drydock" copy local:demo/busybox:latest "docker-archive:$out/busybox.tar"

if ! /usr/bin/docker version >/dev/null 2>&1; then
  echo "== starting dockerd"
  (dockerd >"$out/dockerd.log" 2>&1 &)
  for _ in $(seq 100); do /usr/bin/docker version >/dev/null 2>&1 && break; sleep 0.3; done
fi
/usr/bin/docker load -i "$out/busybox.tar"
/usr/bin/docker run --rm demo/busybox:latest sh -c 'echo "hello from an image drydock made: $(uname -m)"'
