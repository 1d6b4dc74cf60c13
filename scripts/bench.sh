#!/usr/bin/env bash
# Benchmarks, printed side by side from one run on this machine. See BENCHMARKS.md.
#
#   scripts/bench.sh [--baseline REV] [--only ec,rsa,noop,watch,cluster,listen,apply10k]
#
# --baseline REV builds REV (e.g. the main branch before a change) in a worktree of its own under
# target/bench-baseline, and the no-op plan and the 10,000-client apply run both builds
# alternately in the same run. The cluster section provisions RavenDB 4.1 through
# scripts/ravendb-test-server.sh (cached after the first run).
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=()
if [ "${1:-}" = "--baseline" ]; then
  rev="${2:?--baseline needs a revision}"
  shift 2
  dir="target/bench-baseline"
  commit="$(git rev-parse --verify "$rev^{commit}")"
  if [ -d "$dir/src" ]; then
    git -C "$dir/src" checkout -q --detach "$commit"
  else
    rm -rf "$dir/src"
    mkdir -p "$dir"
    git worktree add -q --detach "$dir/src" "$commit"
  fi
  CARGO_TARGET_DIR="$PWD/$dir/target" cargo build --release --quiet --manifest-path "$dir/src/Cargo.toml"
  baseline=(--baseline "$dir/target/release/ravencert")
  echo "baseline: $rev ($(git rev-parse --short "$commit"))"
fi
echo "this build: $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' + uncommitted changes')"
cargo build --release --quiet
cargo build --release --quiet --example synth_store
cargo build --release --quiet --example cluster_bench
exec python3 scripts/bench.py "${baseline[@]}" "$@"
