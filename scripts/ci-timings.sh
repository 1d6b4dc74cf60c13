#!/usr/bin/env bash
# Times CI's steps on a fresh clone, as a new CI machine runs them: an empty target/ and an empty
# RavenDB cache (the cargo registry's downloads are kept). Prints wall and CPU (user+sys) seconds
# per step; CPU seconds are the figure to compare when the machine is not idle.
#
#   bash scripts/ci-timings.sh [REV]   # default HEAD; the clone is made in a temporary folder
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
rev="${1:-HEAD}"
work="$(mktemp -d "${TMPDIR:-/tmp}/ravencert-ci-timings.XXXXXX")"
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/repo"
git -C "$work/repo" checkout -q "$rev"
cd "$work/repo"
export RAVENCERT_RAVENDB_CACHE="$work/ravendb-cache"
export CARGO_TARGET_DIR="$work/target"
results=()
step() {
  local name="$1"; shift
  local out="$work/time.$name"
  local rc=0
  /usr/bin/time -f '%e %U %S' -o "$out" "$@" >"$work/log.$name" 2>&1 || rc=$?
  read -r wall user sys <"$out" || true
  results+=("$(printf '%-14s wall %7.1f s   cpu %7.1f s   exit %d' "$name" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" "$rc")")
  if [ "$rc" -ne 0 ]; then echo "step $name failed; log: $work/log.$name" >&2; tail -30 "$work/log.$name" >&2; fi
}
step clippy-build cargo clippy --all-targets -- -D warnings
step test-build cargo test --no-run
step provisioning bash scripts/ravendb-test-server.sh
step tests cargo test --no-fail-fast
echo "ci-timings for $(git rev-parse --short HEAD) ($(nproc) cores)"
printf '%s\n' "${results[@]}"
