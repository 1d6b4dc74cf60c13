#!/usr/bin/env bash
# Provisions a RavenDB 4.1 server for the cluster tests (docs/contract.md §7), from registry
# packages only:
#   - RavenDB 4.1.0 server:   PyPI pyravendb-embedded==4.1.1.4 (Raven.Server.dll)
#   - .NET Core 2.1 runtime:  PyPI dotnetcore2==2.1.23 (bin/dotnet)
#   - OpenSSL 1.1 libraries:  crates.io openssl-src =111.28.2 (OpenSSL 1.1.1w source, built here;
#                             .NET Core 2.1 cannot use OpenSSL 3 and Debian 12 has no libssl1.1)
# See docs/ravendb.md §7 for why these and how the server is started.
#
# Cache folder: $RAVENCERT_RAVENDB_CACHE, default ~/.cache/ravencert/ravendb-4.1 (about 130 MB).
# The first run takes about 2-3 minutes (most of it the OpenSSL build); later runs return at once.
# Everything is built in a temporary folder beside the cache and moved into place at the end, with
# a .complete marker naming the versions, so a half-built cache never looks complete. Concurrent
# runs (parallel tests) serialize on flock "$cache.lock". Delete the folder to rebuild.
#
# Needs: python3 with pip, cargo, a C compiler, make, perl, flock.
# Prints on stdout, for the tests (tests/common/ravendb.rs):
#   server_dll=<path of Raven.Server.dll>   (start the server with its folder as cwd)
#   dotnet=<path of the dotnet executable>
#   openssl_lib=<folder with libssl.so.1.1 and libcrypto.so.1.1, for LD_LIBRARY_PATH>
# Progress and errors go to stderr; a failure exits non-zero with the reason.
set -euo pipefail

readonly PYRAVENDB_EMBEDDED=4.1.1.4
readonly DOTNETCORE2=2.1.23
readonly OPENSSL_SRC=111.28.2
readonly VERSIONS="pyravendb-embedded==$PYRAVENDB_EMBEDDED dotnetcore2==$DOTNETCORE2 openssl-src==$OPENSSL_SRC"

cache="${RAVENCERT_RAVENDB_CACHE:-$HOME/.cache/ravencert/ravendb-4.1}"
cache="${cache%/}"

say() { echo "ravendb-test-server: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

server_dll="$cache/pyravendb/pyravendb_embedded/RavenDBServer/Raven.Server.dll"
dotnet="$cache/dotnet/dotnetcore2/bin/dotnet"
openssl_lib="$cache/openssl/lib"

is_complete() {
    [[ -f "$cache/.complete" ]] && [[ "$(cat "$cache/.complete")" == "$VERSIONS" ]] \
        && [[ -f "$server_dll" && -x "$dotnet" ]] \
        && [[ -f "$openssl_lib/libssl.so.1.1" && -f "$openssl_lib/libcrypto.so.1.1" ]]
}

print_paths() {
    echo "server_dll=$server_dll"
    echo "dotnet=$dotnet"
    echo "openssl_lib=$openssl_lib"
}

pip_install() { # DIR PACKAGE==VERSION
    say "pip install $2"
    python3 -m pip install --disable-pip-version-check --root-user-action=ignore --no-input \
        --no-deps --target "$1" "$2" >&2 \
        || die "pip install $2 failed (is PyPI reachable?)"
}

# Fetches openssl-src from crates.io with a throwaway manifest in DIR and prints the path of the
# OpenSSL source tree that cargo unpacked into its registry.
fetch_openssl_source() { # DIR
    mkdir -p "$1/src"
    : >"$1/src/lib.rs"
    printf '%s\n' '[package]' 'name = "ravencert-openssl-fetch"' 'version = "0.0.0"' \
        'edition = "2021"' 'publish = false' '[dependencies]' "openssl-src = \"=$OPENSSL_SRC\"" \
        '[workspace]' >"$1/Cargo.toml"
    cargo fetch --manifest-path "$1/Cargo.toml" >&2 \
        || die "cargo fetch of openssl-src $OPENSSL_SRC failed (is crates.io reachable?)"
    # The folder's name carries the build metadata: openssl-src-111.28.2+1.1.1w.
    local registry="${CARGO_HOME:-$HOME/.cargo}/registry" d
    for d in "$registry"/src/*/"openssl-src-$OPENSSL_SRC"+*/openssl; do
        if [[ -f "$d/Configure" ]]; then
            echo "$d"
            return
        fi
    done
    die "openssl-src-$OPENSSL_SRC+*/openssl not found under $registry/src after cargo fetch"
}

# The whole run is one function, parsed before it starts: editing this file while a run is
# under way cannot change what that run does.
main() {
    # Fast path: no lock needed to read a finished cache (it only ever appears by rename).
    if is_complete; then
        print_paths
        exit 0
    fi

    command -v flock >/dev/null || die "flock is missing (Debian: apt-get install util-linux)"
    mkdir -p "$(dirname "$cache")" || die "cannot create $(dirname "$cache")"
    exec 9>"$cache.lock" || die "cannot open the lock file $cache.lock"
    say "waiting for the lock $cache.lock"
    flock 9
    if is_complete; then # another run finished it while we waited
        print_paths
        exit 0
    fi

    # Leftovers of a run that was killed (we hold the lock: nobody else is building).
    rm -rf "$cache".tmp.*

    # Check the tools before spending minutes.
    python3 -m pip --version >/dev/null 2>&1 \
        || die "python3 with pip is needed (Debian 12: apt-get install python3-pip)"
    command -v cargo >/dev/null || die "cargo is needed to fetch openssl-src from crates.io"
    local tool
    for tool in cc make perl; do
        command -v "$tool" >/dev/null \
            || die "$tool is needed to build OpenSSL 1.1 (Debian 12: apt-get install build-essential perl)"
    done

    local started=$SECONDS
    # The stage sits beside the cache, so the final mv is a rename on one file system.
    stage="$(mktemp -d "$cache.tmp.XXXXXX")"
    chmod 755 "$stage"
    work="$(mktemp -d "${TMPDIR:-/tmp}/ravencert-ravendb-build.XXXXXX")"
    trap 'rm -rf "$stage" "$work"' EXIT

    pip_install "$stage/pyravendb" "pyravendb-embedded==$PYRAVENDB_EMBEDDED"
    pip_install "$stage/dotnet" "dotnetcore2==$DOTNETCORE2"
    [[ -f "$stage/pyravendb/pyravendb_embedded/RavenDBServer/Raven.Server.dll" ]] \
        || die "pyravendb-embedded $PYRAVENDB_EMBEDDED has no RavenDBServer/Raven.Server.dll"
    [[ -x "$stage/dotnet/dotnetcore2/bin/dotnet" ]] \
        || die "dotnetcore2 $DOTNETCORE2 has no executable bin/dotnet"

    say "cargo fetch openssl-src =$OPENSSL_SRC"
    local src
    src="$(fetch_openssl_source "$work/fetch")"
    say "building OpenSSL 1.1 shared libraries from $src (about 2 minutes)"
    cp -a "$src" "$work/openssl"
    (cd "$work/openssl" && ./config shared no-tests >&2 && make -j2 build_libs >&2) \
        || die "the OpenSSL build failed (see the output above)"
    mkdir -p "$stage/openssl/lib"
    local lib
    for lib in libssl.so.1.1 libcrypto.so.1.1; do
        [[ -f "$work/openssl/$lib" ]] || die "the OpenSSL build made no $lib"
        cp "$work/openssl/$lib" "$stage/openssl/lib/"
    done

    # The runtime must start here (a missing library shows now, not in every test).
    DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 LD_LIBRARY_PATH="$stage/openssl/lib" \
        "$stage/dotnet/dotnetcore2/bin/dotnet" --list-runtimes >&2 \
        || die "the .NET Core runtime from dotnetcore2 $DOTNETCORE2 does not start"

    echo "$VERSIONS" >"$stage/.complete"
    if [[ -e "$cache" ]]; then
        say "replacing the incomplete or outdated $cache"
        rm -rf "$cache"
    fi
    mv -T "$stage" "$cache" || die "cannot move the finished cache into $cache"
    say "ready in $((SECONDS - started)) s: $cache ($(du -sh "$cache" | cut -f1))"
    is_complete || die "$cache is not complete after the build"
    print_paths
}

main "$@"
