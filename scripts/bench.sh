#!/usr/bin/env bash
# Benchmarks, printed side by side from one run on this machine. See BENCHMARKS.md.
# scripts/bench.sh [--only ec,rsa,noop,watch,cluster,listen]; the cluster section provisions RavenDB
# 4.1 through scripts/ravendb-test-server.sh (cached after the first run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
cargo build --release --quiet --example synth_store
cargo build --release --quiet --example cluster_bench
exec python3 scripts/bench.py "$@"
