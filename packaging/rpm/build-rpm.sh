#!/usr/bin/env bash
# RPM helper for packaging/rpm/mod_oauth2-rs.spec (Fedora/RHEL). Run through make:
#   build-rpm.sh check    `make rpm-check`: the spec parses (rpmspec -P), its version matches
#                         Cargo.toml, and rpmlint (if installed) has no errors on it
#   build-rpm.sh build    `make rpm`: Source0 tarball + `rpmbuild -bb` in target/rpm/. On Fedora/RHEL
#                         with the BuildRequires installed this is the real build; elsewhere (Debian)
#                         it passes --nodeps and builds against the local httpd headers (apxs), a
#                         smoke test of the spec, not a package to install
#   build-rpm.sh vendor   also writes Source1 (cargo vendor tarball) for `rpmbuild --with vendor`
# RPM_SOURCE=HEAD (default, any commit) or RPM_SOURCE=worktree, as DEB_SOURCE for make deb;
# packaging/ always comes from the working tree.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP"
SPEC=packaging/rpm/mod_oauth2-rs.spec
OUT=$TOP/target/rpm
RPM_SOURCE=${RPM_SOURCE:-HEAD}
cmd=${1:-check}

command -v rpmspec >/dev/null || { echo "build-rpm: rpmspec not found (Debian: apt-get install rpm)" >&2; exit 1; }
NAME=$(rpmspec -q --srpm --qf '%{name}' "$SPEC")
VERSION=$(rpmspec -q --srpm --qf '%{version}' "$SPEC")
CARGO_VERSION=$(awk '/^\[/ { sec = $0 } sec == "[package]" && $1 == "version" { gsub(/[" ]/, "", $3); print $3; exit }' Cargo.toml)

check() {
    rpmspec -P "$SPEC" > /dev/null
    echo "rpm-check: $SPEC parses ($NAME $VERSION)"
    if [ "$VERSION" != "$CARGO_VERSION" ]; then
        echo "rpm-check: the spec says $VERSION, Cargo.toml $CARGO_VERSION: update Version: and %changelog" >&2
        exit 1
    fi
    rpmspec -P "$SPEC" | grep -E "^(Requires|Provides|Conflicts|BuildRequires):" | sed "s/^/  /"
    if command -v rpmlint >/dev/null; then
        rpmlint "$SPEC"
    else
        echo "rpm-check: rpmlint not installed, skipped"
    fi
}

tarball() {
    local stage=$OUT/stage/$NAME-$VERSION
    rm -rf "$OUT/stage"
    mkdir -p "$stage" "$OUT/SOURCES"
    if [ "$RPM_SOURCE" = worktree ]; then
        git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$stage"
    else
        git archive --format=tar "$RPM_SOURCE" | tar -xf - -C "$stage"
    fi
    rm -rf "$stage/packaging"
    cp -a packaging "$stage/packaging"
    tar -C "$OUT/stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
        -czf "$OUT/SOURCES/$NAME-$VERSION.tar.gz" "$NAME-$VERSION"
    echo "build-rpm: $OUT/SOURCES/$NAME-$VERSION.tar.gz"
}

vendor() {
    local stage=$OUT/stage/$NAME-$VERSION
    (cd "$stage" && cargo vendor --locked vendor > /dev/null)
    tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
        -czf "$OUT/SOURCES/$NAME-$VERSION-vendor.tar.gz" vendor
    rm -rf "$stage/vendor"
    echo "build-rpm: $OUT/SOURCES/$NAME-$VERSION-vendor.tar.gz"
}

build() {
    check
    tarball
    local extra=()
    if [ -f /etc/debian_version ]; then
        extra+=(--nodeps --define "_httpd_apxs $(command -v apxs)")
        echo "build-rpm: Debian host: rpmbuild --nodeps (BuildRequires are Fedora names)"
    fi
    if [ "${WITH_VENDOR:-}" = 1 ]; then vendor; extra+=(--with vendor); fi
    nice -n 10 rpmbuild -bb --define "_topdir $OUT" "${extra[@]}" "$SPEC"
    find "$OUT/RPMS" -name '*.rpm' -print0 | while IFS= read -r -d '' r; do
        echo "== $r ($(stat -c %s "$r") bytes)"
        rpm -qp --requires --provides --conflicts "$r" 2>/dev/null | sed 's/^/  /'
        rpm -qlp "$r" 2>/dev/null | sed 's/^/  /'
    done
}

case "$cmd" in
    check) check ;;
    build) build ;;
    vendor) tarball; vendor ;;
    *) echo "usage: $0 check|build|vendor" >&2; exit 2 ;;
esac
