#!/usr/bin/env bash
# Builds target/debian/libapache2-mod-oauth2-rs_<version>_<arch>.deb with dpkg-buildpackage and
# debhelper (packaging/debian/), then checks it with lintian. Run through `make deb`.
#
#   DEB_SOURCE=HEAD        (default) package the committed tree at HEAD; any commit or tag works
#   DEB_SOURCE=worktree    package the working tree as it is (tracked and untracked, not ignored)
#   DEB_BUILD_OPTIONS=...  passed to dpkg-buildpackage (e.g. nocheck skips the module load check)
#   NO_LINTIAN=1           skip lintian
#
# packaging/debian/ is always taken from the working tree, so packaging changes can be tried
# before they are committed. The source is staged in target/debian/mod-oauth2-rs-<version>/
# (dpkg-buildpackage needs debian/ at the top of the tree); cargo's output goes to
# target/debian/cargo-target/, kept between runs so that only the module itself is rebuilt.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
DEB_SOURCE=${DEB_SOURCE:-HEAD}
OUT=$TOP/target/debian

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Build dependencies: debian/control's Build-Depends (the Rust toolchain comes from rustup, see
# packaging/README.md), plus lintian.
need=()
dpkg-query -W -f='${Status}' lintian 2>/dev/null | grep -q "install ok installed" || need+=(lintian)
dpkg-query -W -f='${Status}' build-essential 2>/dev/null | grep -q "install ok installed" || need+=(build-essential)
if ! unmet=$(dpkg-checkbuilddeps packaging/debian/control 2>&1); then
    # "dpkg-checkbuilddeps: error: Unmet build dependencies: a (>= 1) b | c" -> a b
    need+=($(echo "$unmet" | sed -n 's/.*Unmet build dependencies: //p' | sed 's/([^)]*)//g; s/ *| *[^ ]*//g; s/:any//g'))
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "build-deb: installing ${need[*]}" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "build-deb: cargo not found; install Rust >= 1.85 (rustup)" >&2; exit 1; }

# The upstream version is Cargo.toml's; the Debian changelog must have an entry for it.
UPVER=$(awk '/^\[/ { sec = $0 } sec == "[package]" && $1 == "version" { gsub(/[" ]/, "", $3); print $3; exit }' Cargo.toml)
if [ "$DEB_SOURCE" != worktree ]; then
    UPVER=$(git show "$DEB_SOURCE:Cargo.toml" | awk '/^\[/ { sec = $0 } sec == "[package]" && $1 == "version" { gsub(/[" ]/, "", $3); print $3; exit }')
fi
DEBVER=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
if [ "${DEBVER%-*}" != "$UPVER" ]; then
    echo "build-deb: Cargo.toml says version $UPVER, packaging/debian/changelog's top entry is $DEBVER." >&2
    echo "  add a changelog entry first:  (cd packaging && dch -v $UPVER-1 'New upstream release.')" >&2
    exit 1
fi
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
DEB=$OUT/libapache2-mod-oauth2-rs_${DEBVER}_${ARCH}.deb

STAGE=$OUT/mod-oauth2-rs-$UPVER
rm -rf "$STAGE"
mkdir -p "$STAGE"
if [ "$DEB_SOURCE" = worktree ]; then
    echo "build-deb: packaging the working tree"
    git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$STAGE"
else
    echo "build-deb: packaging $DEB_SOURCE ($(git rev-parse --short "$DEB_SOURCE^{commit}"))"
    git archive --format=tar "$DEB_SOURCE" | tar -xf - -C "$STAGE"
fi
rm -rf "$STAGE/debian" "$STAGE/packaging"
cp -a packaging/debian "$STAGE/debian"
# Fresh mtimes: cargo decides what to rebuild by mtime, and the staged tree may be an older commit.
find "$STAGE" -exec touch {} +

rm -f "$OUT"/libapache2-mod-oauth2-rs_*.deb "$OUT"/mod-oauth2-rs_*.buildinfo "$OUT"/mod-oauth2-rs_*.changes
(
    cd "$STAGE"
    # nice: a package build should not slow down the other builds on this machine.
    CARGO_TARGET_DIR=$OUT/cargo-target nice -n 10 dpkg-buildpackage --build=binary --no-sign
)
"$TOP/packaging/check-copyright.sh" "$STAGE"

echo
echo "== $DEB ($(stat -c %s "$DEB") bytes)"
dpkg-deb --field "$DEB" Package Version Architecture Installed-Size Depends Provides Conflicts Replaces
echo "== contents"
dpkg-deb --contents "$DEB" | awk '{ print $1, $3, $6 }'
tmp=$(mktemp -d)
dpkg-deb -x "$DEB" "$tmp"
echo "== sha256"
(cd "$tmp" && sha256sum usr/lib/apache2/modules/mod_oauth2.so)
sha256sum "$DEB" | sed "s#$OUT/##"
rm -rf "$tmp"
if [ -z "${NO_LINTIAN:-}" ]; then
    echo "== lintian"
    lintian --fail-on error --display-info "$DEB"
    echo "lintian: no errors"
fi
