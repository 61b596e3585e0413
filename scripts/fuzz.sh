#!/usr/bin/env bash
# A short fuzz run of every target (default 30 s each), installing cargo-fuzz if needed.
# Usage: scripts/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cd fuzz
for target in $(cargo fuzz list); do
  echo "== fuzz $target for ${seconds}s"
  mkdir -p "corpus/$target"
  # A scratch copy of the corpus: the committed one stays minimal (cargo fuzz cmin to grow it).
  scratch="$(mktemp -d)"
  cp -r "corpus/$target/." "$scratch/"
  cargo +nightly fuzz run "$target" "$scratch" -- -max_total_time="$seconds" -rss_limit_mb=2048
  rm -rf "$scratch"
done
