#!/usr/bin/env bash
# Runs the example pipeline (examples/hello) end to end, with no Docker daemon:
#   1. starts the embedded registry (`drydock registry serve`) in the background,
#   2. makes the busybox base image from the host (`drydock kit busybox`),
#   3. runs `drydock run` on a git repository copy of examples/hello:
#      test -> build -> tag -> push to the registry -> deploy (pull back) -> smoke (run it),
#   4. checks the pushed image from scratch: a fresh DRYDOCK_HOME pulls it from the registry
#      and runs it.
#
# Needs: root (the sandbox), git, busybox-static. Environment:
#   DRYDOCK   the drydock binary (default: drydock on PATH, else target/{release,debug}/drydock,
#             else `cargo build --release`)
#   REGISTRY  host:port for the registry (default 127.0.0.1:5000)
#   KEEP=1    keep the work directory (registry storage, DRYDOCK_HOME, repository copy)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
REGISTRY=${REGISTRY:-127.0.0.1:5000}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "run-example: $*" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-$root/target}"
if [[ -z "${DRYDOCK:-}" ]]; then
  if command -v drydock >/dev/null 2>&1; then
    DRYDOCK=$(command -v drydock)
  elif [[ -x "$target/release/drydock" ]]; then
    DRYDOCK="$target/release/drydock"
  elif [[ -x "$target/debug/drydock" ]]; then
    DRYDOCK="$target/debug/drydock"
  else
    say "building drydock (cargo build --release -p drydock-cli)"
    (cd "$root" && cargo build --release -p drydock-cli)
    DRYDOCK="$target/release/drydock"
  fi
fi
command -v git >/dev/null || die "git is needed (apt-get install git)"
[[ $(id -u) == 0 ]] || die "jobs with an image run in the sandbox, which needs root here"

work=$(mktemp -d /tmp/drydock-example.XXXXXX)
registry_pid=""
cleanup() {
  if [[ -n "$registry_pid" ]]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  if [[ "${KEEP:-0}" == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
export DRYDOCK_HOME="$work/home"

say "starting the embedded registry on $REGISTRY"
"$DRYDOCK" registry serve --listen "$REGISTRY" --storage "$work/registry" >"$work/registry.log" 2>&1 &
registry_pid=$!
host=${REGISTRY%:*}
port=${REGISTRY##*:}
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then break; fi
  kill -0 "$registry_pid" 2>/dev/null || { cat "$work/registry.log"; die "the registry did not start"; }
  sleep 0.1
done

say "making the busybox base image (drydock kit busybox)"
"$DRYDOCK" kit busybox

say "copying examples/hello into a git repository"
repo="$work/hello"
cp -a "$here/hello" "$repo"
if [[ "$REGISTRY" != "127.0.0.1:5000" ]]; then
  sed -i "s#127.0.0.1:5000/#$REGISTRY/#g" "$repo/drydock.yml"
fi
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name=example -c user.email=example@example.invalid commit -q -m "hello, drydock"
sha=$(git -C "$repo" rev-parse HEAD)

say "drydock run $repo"
"$DRYDOCK" run "$repo" | tee "$work/run.log"

# The summary's image line: "  app  sha256:...  pushed <tags>".
digest=$(grep -E '^  app  sha256:[0-9a-f]{64}' "$work/run.log" | grep -o 'sha256:[0-9a-f]*' | head -1)
[[ -n "$digest" ]] || die "the summary names no image digest"
grep -qE "^  app  $digest  pushed " "$work/run.log" || die "the image was not pushed"

say "the registry has the tags"
"$DRYDOCK" tags list "$REGISTRY/hello/app"
for tag in "sha-$sha" main latest; do
  info=$("$DRYDOCK" inspect "docker://$REGISTRY/hello/app:$tag")
  grep -q "\"Digest\": \"$digest\"" <<<"$info" || die "$REGISTRY/hello/app:$tag is not $digest"
  echo "$REGISTRY/hello/app:$tag -> $digest"
done

say "pulling $REGISTRY/hello/app@$digest into a fresh DRYDOCK_HOME and running it"
verify="$work/verify"
mkdir -p "$verify/repo"
cat >"$verify/repo/drydock.yml" <<EOF
jobs:
  run-pushed-image:
    image: $REGISTRY/hello/app@$digest
    steps:
      - run: /app/hello.sh
EOF
git -C "$verify/repo" init -q -b main
git -C "$verify/repo" add -A
git -C "$verify/repo" -c user.name=example -c user.email=example@example.invalid commit -q -m verify
out=$(DRYDOCK_HOME="$verify/home" "$DRYDOCK" run "$verify/repo")
echo "$out"
grep -q "run-pushed-image | Hello from drydock!" <<<"$out" || die "the pulled image did not greet"

say "ok: tested, built, tagged, pushed to $REGISTRY, pulled back and run ($digest)"
