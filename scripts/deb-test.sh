#!/usr/bin/env bash
# The Debian package's acceptance test (issue 27; run by .ci/run after scripts/test.sh): builds
# the .deb (scripts/deb.sh), installs it with dpkg -i on this machine, checks what the README's
# "Install" section promises, then removes it with dpkg -r and checks that /etc/ravencert and the
# stores under /var/lib/ravencert are left alone. Needs root (it installs a package). The package
# is removed on every exit (trap), and the test's own files with it; /etc/ravencert, which the
# package creates, stays (as it would for any user).
#
#   sudo bash scripts/deb-test.sh
#
# Installs what it needs when missing: cargo-deb 3.8.0 (cargo install, ~3 min) and man-db (for
# `man -w`). systemd-analyze verify runs where systemd is installed and is skipped (said so) where
# it is not.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() {
  printf '   FAIL: %s\n' "$*" >&2
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/deb-test.sh installs and removes the ravencert package: run it as root" >&2
  exit 1
fi
if dpkg-query -W -f='${db:Status-Status}' ravencert 2>/dev/null | grep -qv '^not-installed$'; then
  echo "scripts/deb-test.sh: ravencert is already installed here (dpkg); the test would remove it" >&2
  exit 1
fi

step "tools: cargo-deb, man-db"
if ! cargo deb --version >/dev/null 2>&1; then
  echo "   cargo-deb is missing: cargo install cargo-deb --locked --version 3.8.0 (~3 min)"
  cargo install cargo-deb --locked --version 3.8.0
fi
if ! command -v man >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends man-db
fi
ok "$(cargo deb --version), $(man --version | head -1)"

# What the test itself creates, removed on every exit with the package.
keep=/etc/ravencert/test-keep
store=/var/lib/ravencert/test-store
had_var_lib=no
[ -e /var/lib/ravencert ] && had_var_lib=yes
[ -e "$keep" ] && fail "$keep exists already (left by an earlier run?); remove it first"
[ -e "$store" ] && fail "$store exists already (left by an earlier run?); remove it first"
installed=no
cleanup() {
  local rc=$?
  if [ "$installed" = yes ] || dpkg-query -W ravencert >/dev/null 2>&1; then
    echo "   cleanup: dpkg -P ravencert"
    dpkg -P ravencert >/dev/null 2>&1 || true
  fi
  rm -f "$keep"
  rm -rf "$store"
  if [ "$had_var_lib" = no ]; then rmdir /var/lib/ravencert 2>/dev/null || true; fi
  [ $rc -eq 0 ] && printf '\nscripts/deb-test.sh: all checks passed\n' ||
    printf '\nscripts/deb-test.sh: FAILED (exit %s)\n' "$rc" >&2
}
trap cleanup EXIT

step "build: bash scripts/deb.sh"
deb=$(bash scripts/deb.sh | tail -1)
[ -f "$deb" ] || fail "scripts/deb.sh printed no package path"
ok "$deb"
depends=$(dpkg-deb -f "$deb" Depends)
ok "Depends: $depends"
echo "$depends" | grep -q 'libssl' || fail "the package does not depend on libssl"

step "install: dpkg -i"
# Minimal (container) images tell dpkg to skip /usr/share/man and /usr/share/doc; the test
# checks what the package ships, so it includes its own files back.
dpkg_opts=()
if grep -rqs 'path-exclude' /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/; then
  echo "   note: this machine's dpkg config excludes paths; including the package's own back"
  dpkg_opts+=(--path-include='/usr/share/man/man1/ravencert.1.gz'
    --path-include='/usr/share/doc/ravencert/*')
fi
installed=yes
dpkg "${dpkg_opts[@]}" -i "$deb"
ok "installed $(dpkg-query -W -f='${Package} ${Version}' ravencert)"

step "ravencert --version names the commit"
commit=${RAVENCERT_GIT_COMMIT:-$(git rev-parse --short=12 HEAD)}
[ "$(command -v ravencert)" = /usr/bin/ravencert ] || fail "ravencert on PATH is $(command -v ravencert)"
version=$(/usr/bin/ravencert --version)
echo "   $version"
[[ "$version" == *"(commit $commit)"* ]] || fail "--version does not name commit $commit"
ok "commit $commit"

step "man -w ravencert"
page=$(man -w ravencert) || fail "man -w does not find the page"
[ "$page" = /usr/share/man/man1/ravencert.1.gz ] || fail "man -w found $page"
ok "$page"

step "completions, units, docs where the README says"
for f in \
  /usr/share/bash-completion/completions/ravencert \
  /usr/share/zsh/vendor-completions/_ravencert \
  /usr/share/fish/vendor_completions.d/ravencert.fish \
  /lib/systemd/system/ravencert-watch.service \
  /lib/systemd/system/ravencert-watch@.service \
  /usr/share/doc/ravencert/README.md; do
  [ -s "$f" ] || fail "missing or empty: $f"
  ok "$f"
done
grep -q 'ExecStart=/usr/bin/ravencert ' /lib/systemd/system/ravencert-watch.service ||
  fail "ravencert-watch.service does not run /usr/bin/ravencert"
grep -q '/etc/ravencert/%i/certs.toml' /lib/systemd/system/ravencert-watch@.service ||
  fail "ravencert-watch@.service does not read /etc/ravencert/%i/certs.toml"

step "/etc/ravencert: root:root, 0700"
perm=$(stat -c '%U:%G %a' /etc/ravencert)
[ "$perm" = "root:root 700" ] || fail "/etc/ravencert is $perm"
ok "$perm"
if dpkg -L ravencert | grep -qx '/etc/ravencert'; then
  fail "/etc/ravencert is a package directory (dpkg -r would remove it)"
fi
ok "not a package directory (postinst creates it)"

step "systemd-analyze verify"
if command -v systemd-analyze >/dev/null 2>&1; then
  # The template is verified through an instance, from a copy named like one.
  tmp=$(mktemp -d)
  cp /lib/systemd/system/ravencert-watch@.service "$tmp/ravencert-watch@example.service"
  for unit in /lib/systemd/system/ravencert-watch.service "$tmp/ravencert-watch@example.service"; do
    if ! out=$(systemd-analyze verify "$unit" 2>&1) || [ -n "$out" ]; then
      rm -rf "$tmp"
      fail "systemd-analyze verify $unit: $out"
    fi
    ok "$(basename "$unit")"
  done
  rm -rf "$tmp"
else
  echo "   skipped: systemd is not installed on this machine (no systemd-analyze)"
fi

step "dpkg -r keeps /etc/ravencert and the stores"
echo "test file: scripts/deb-test.sh removes it" >"$keep"
mkdir -p "$store"
echo "a store's content" >"$store/marker"
files=$(dpkg -L ravencert | while read -r f; do [ -f "$f" ] && echo "$f"; done)
dpkg -r ravencert
installed=no
# config-files: dpkg keeps the postrm until a purge (the package has no conffiles).
status=$(dpkg-query -W -f='${db:Status-Status}' ravencert 2>/dev/null || echo not-installed)
case "$status" in
  not-installed | config-files) ok "dpkg: $status" ;;
  *) fail "after dpkg -r, dpkg says $status" ;;
esac
conffiles=$(dpkg-query -W -f='${Conffiles}' ravencert 2>/dev/null || true)
[ -z "$conffiles" ] || fail "the package has conffiles: $conffiles"
for f in $files; do
  [ ! -e "$f" ] || fail "left behind: $f"
done
ok "every file of the package removed ($(echo "$files" | wc -l) files)"
[ -f "$keep" ] || fail "$keep was removed"
[ -f "$store/marker" ] || fail "$store was removed"
perm=$(stat -c '%U:%G %a' /etc/ravencert)
[ "$perm" = "root:root 700" ] || fail "/etc/ravencert is now $perm"
ok "/etc/ravencert ($perm) and $store survive"

step "dpkg -P (purge) keeps them too"
dpkg -P ravencert
[ -f "$keep" ] && [ -f "$store/marker" ] || fail "dpkg -P removed $keep or $store"
ok "/etc/ravencert and $store survive a purge"
