#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ for a bounded time each, one after the other. Not in CI.
#
#   scripts/fuzz.sh                  # 600 s per target, every target
#   scripts/fuzz.sh 60               # 60 s per target
#   scripts/fuzz.sh 600 cert_file    # one target
#   FUZZ_SECONDS=120 scripts/fuzz.sh
#
# Targets: config (config::parse on certs.toml text), cert_file (pki::read_cert_file, then
# end_entities and inspect), password_file (a password file's bytes through the reader's checks
# to OpenSSL opening a .pfx) and cluster_listing (the decoder of a cluster's certificate list).
# Each run starts from a scratch corpus, fuzz/corpus/<target>, seeded from fuzz/seeds/<target>
# (the scratch corpus, fuzz/artifacts and fuzz/target are ignored by git). One process per target (no -jobs), -rss_limit_mb=2048, address sanitizer, debug
# assertions on. A crash, leak, OOM or timeout input is copied to fuzz/regressions/<target>/
# and the script exits non-zero after running the remaining targets.
#
# Works on stable Rust: cargo-fuzz needs nightly flags (-Zsanitizer and friends), and
# RUSTC_BOOTSTRAP=1 lets the stable compiler accept them. Installs cargo-fuzz if it is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

duration="${1:-${FUZZ_SECONDS:-600}}"
shift || true
if ! [[ "$duration" =~ ^[0-9]+$ ]] || [ "$duration" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (SECONDS: a whole number, default 600)" >&2
    exit 2
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config cert_file password_file cluster_listing)

export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
echo "== $(cargo fuzz --version), $(rustc --version)"

# Same flags for build and run, so that run does not rebuild.
flags=(--fuzz-dir fuzz --debug-assertions)

echo "== building ${targets[*]}"
for t in "${targets[@]}"; do
    cargo fuzz build "${flags[@]}" "$t"
done

mkdir -p fuzz/logs
failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    artifacts="fuzz/artifacts/$t"
    log="fuzz/logs/$t.log"
    rm -rf "$corpus" "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    cp fuzz/seeds/"$t"/* "$corpus"/
    seeds=$(find "$corpus" -type f | wc -l)

    extra=()
    [ -f "fuzz/dicts/$t.dict" ] && extra+=("-dict=fuzz/dicts/$t.dict")

    echo "== fuzzing $t for ${duration}s from $seeds seeds (log: $log)"
    start=$(date +%s)
    set +e
    cargo fuzz run "${flags[@]}" "$t" "$corpus" -- \
        -max_total_time="$duration" -rss_limit_mb=2048 -timeout=60 \
        -print_final_stats=1 "${extra[@]}" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    elapsed=$(( $(date +%s) - start ))

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    files=$(find "$corpus" -type f | wc -l)
    found=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' \
        -o -name 'timeout-*' -o -name 'slow-unit-*' \) | wc -l)

    verdict="no crash"
    if [ "$status" -ne 0 ] || [ "$found" -gt 0 ]; then
        verdict="FAILED (exit $status, $found artifact(s))"
        failed+=("$t")
        if [ "$found" -gt 0 ]; then
            mkdir -p "fuzz/regressions/$t"
            cp "$artifacts"/* "fuzz/regressions/$t"/
            verdict="$verdict: reproducer(s) copied to fuzz/regressions/$t/"
        fi
    fi
    line="$t: ${elapsed}s wall (-max_total_time=$duration), ${execs:-?} executions, ${rate:-?} exec/s, corpus $seeds seeds -> $files inputs, ${cov:-cov ?}, peak RSS ${peak:-?} MB, $verdict"
    summary+=("$line")
    echo "== $line"
done

echo
echo "== summary ($(cargo fuzz --version))"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "== crashes in: ${failed[*]}; reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz --debug-assertions TARGET fuzz/regressions/TARGET/FILE" >&2
    exit 1
fi
