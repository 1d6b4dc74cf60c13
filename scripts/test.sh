#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need when it is missing,
# provisions the real RavenDB 4.1 the cluster tests run against (cached), then runs every test
# binary (--no-fail-fast: a failure in one does not hide the others): the unit tests, `it` (the
# integration tests that need no server), `live` (RavenDB 4.1 and Chromium) and `architecture`.
#
#   bash scripts/test.sh                           # everything
#   bash scripts/test.sh --test live cluster::     # extra arguments go to `cargo test`
#   bash scripts/test.sh --test it cli::           # one module (a former tests/NAME.rs) of `it`
#
# The packages come from Debian's archive (apt-get, as root). Without root, the script names
# what is missing and the command that installs it, and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v git >/dev/null 2>&1 || need+=(git)          # repositories in the GitOps tests
command -v flock >/dev/null 2>&1 || need+=(util-linux) # holding a store lock in tests
command -v unzip >/dev/null 2>&1 || need+=(unzip)      # opening `ravencert bundle` zips in tests
# The RavenDB test server (scripts/ravendb-test-server.sh): pip for its packages, a C
# toolchain and perl for OpenSSL 1.1, curl for the tests' Studio-like requests.
command -v curl >/dev/null 2>&1 || need+=(curl)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v make >/dev/null 2>&1 || need+=(make)
command -v perl >/dev/null 2>&1 || need+=(perl)
command -v cc >/dev/null 2>&1 || need+=(gcc)
# The status page, rendered in headless Chromium (tests/live/status_page.rs).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: the tests need ${need[*]}; install them with:" >&2
    echo "  sudo apt-get install --no-install-recommends ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

bash scripts/ravendb-test-server.sh >/dev/null
cargo test --no-fail-fast "$@"
