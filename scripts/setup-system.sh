#!/usr/bin/env bash
# Installs the Debian packages drydock's tests, demo and benchmarks use. Idempotent: it only
# touches apt when something is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  # real peers the tests talk to
  docker.io docker-registry skopeo umoci buildah runc
  # base images from the host (drydock kit)
  busybox-static debootstrap
  # tools the tests and benchmarks compare with or drive
  pigz zstd apache2-utils openssl git uidmap iproute2 python3-pip curl procps time
  # the web UI test drives a real headless browser
  chromium chromium-driver
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The oras client (artifacts and referrers interop tests) comes from PyPI.
if ! python3 -c "import oras" 2>/dev/null; then
  pip install --quiet oras >/dev/null 2>&1 || echo "setup: warning: pip install oras failed"
fi

# cargo-nextest is on these machines; install it if a machine lacks it.
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
