#!/usr/bin/env bash
# Builds the Debian package (target/debian/ravencert_VERSION-1_ARCH.deb) and prints its path:
# the release binary, then the man page and completions written by that binary (so they match
# its clap definition), then `cargo deb --no-build` with [package.metadata.deb] in Cargo.toml.
#
#   bash scripts/deb.sh            # then: sudo dpkg -i "$(bash scripts/deb.sh | tail -1)"
#
# Needs cargo-deb (cargo install cargo-deb --locked --version 3.8.0); the build needs
# pkg-config and libssl-dev, like any build. Progress goes to stderr, the path alone to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "scripts/deb.sh: cargo-deb is missing; install it with:" >&2
  echo "  cargo install cargo-deb --locked --version 3.8.0" >&2
  exit 1
fi

target=${CARGO_TARGET_DIR:-target}

cargo build --release --locked >&2
bin="$target/release/ravencert"
assets="$target/release/deb-assets"
rm -rf "$assets"
mkdir -p "$assets"
"$bin" man | gzip -9n >"$assets/ravencert.1.gz"
"$bin" completions bash >"$assets/ravencert.bash"
"$bin" completions zsh >"$assets/_ravencert"
"$bin" completions fish >"$assets/ravencert.fish"

# --no-build: the binary above is the one packaged (and its commit the one --version names).
# cargo-deb prints the package's path on stdout.
deb=$(cargo deb --no-build --locked | tail -1)
test -f "$deb"
echo "$deb"
