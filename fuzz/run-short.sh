#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20). Installs cargo-fuzz if missing. The
# toolchain is stable, so RUSTC_BOOTSTRAP=1 unlocks the sanitizer flags cargo-fuzz needs.
# Crashes make this script fail; the input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
# Seed corpora from the frontend's test cases, so fuzzing starts from real Dockerfiles.
mkdir -p corpus/dockerfile_parse corpus/word_expand
for f in ../crates/drydock-frontend/tests/cases/*/Dockerfile; do
  name="$(basename "$(dirname "$f")")"
  cp -f "$f" "corpus/dockerfile_parse/$name"
done
printf '%s\n' '${A:-x}' '${A#*/}' '${A//a/b}' '"$A $B"' "'\$A'" '${A:?m}' '$1$@$$' > corpus/word_expand/seed-list
i=0
while IFS= read -r w; do
  printf '%s\nA=a/b/c\nB=\n' "$w" > "corpus/word_expand/seed-$i"
  i=$((i + 1))
done < corpus/word_expand/seed-list
rm -f corpus/word_expand/seed-list
mkdir -p corpus/expr_eval
i=0
for e in "github.ref == 'refs/heads/main'" "\${{ contains(github.event.labels.*.name, 'a') }}" "format('{0}', toJSON(needs))" "fromJSON('[1,2]')[1] < 0x10" "!success() || always()"; do
  printf '%s' "$e" > "corpus/expr_eval/seed-$i"
  i=$((i + 1))
done
mkdir -p corpus/config_parse
for f in ../crates/drydock-config/tests/fixtures/*/*.yml; do
  cp -f "$f" "corpus/config_parse/$(basename "$(dirname "$f")")-$(basename "$f")"
done
targets="$(cargo fuzz list)"
for target in $targets; do
  cargo fuzz build "$target"
done
for target in $targets; do
  echo "== fuzz $target for ${seconds}s"
  log="$(mktemp)"
  set +e
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 >"$log" 2>&1
  rc=$?
  set -e
  grep -E "^(#[0-9]+ +DONE|Done [0-9]+ runs|SUMMARY|.*panicked at)" "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -40 "$log"
    echo "!! $target failed (exit $rc); crash inputs are in fuzz/artifacts/$target/"
    exit 1
  fi
  rm -f "$log"
done
echo "fuzz: all targets ran ${seconds}s each without a crash"
