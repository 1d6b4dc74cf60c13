#!/usr/bin/env bash
# Benchmarks, printed side by side from one run on this machine. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
cargo build --release --quiet --example synth_store
exec python3 scripts/bench.py "$@"
