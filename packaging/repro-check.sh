#!/usr/bin/env bash
# Reproducibility check: builds the package twice from the same commit (DEB_SOURCE, default HEAD)
# in two different directories -- this repository and a temporary `git worktree` under /tmp, each
# with its own cargo target directory -- and compares the sha256 of the module (and of the .deb).
# The second build is a full build from scratch (about a minute on 2 cores). Run via `make deb-repro`.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
export DEB_SOURCE=${DEB_SOURCE:-HEAD}
COMMIT=$(git rev-parse "$DEB_SOURCE^{commit}")
export DEB_SOURCE=$COMMIT   # both builds from this commit, even if HEAD moves meanwhile
WT=$(mktemp -d /tmp/mod-oauth2-rs-repro.XXXXXX)
cleanup() {
    git -C "$TOP" worktree remove --force "$WT" 2>/dev/null || rm -rf "$WT"
    git -C "$TOP" worktree prune
}
trap cleanup EXIT
git worktree add --detach "$WT" "$COMMIT" >/dev/null 2>&1
# The packaging under test comes from this working tree (it may not be committed yet).
rm -rf "$WT/packaging"
cp -a "$TOP/packaging" "$WT/packaging"

so_sum() { # deb -> sha256 of the module inside
    local d
    d=$(mktemp -d)
    dpkg-deb -x "$1" "$d"
    sha256sum "$d/usr/lib/apache2/modules/mod_oauth2.so" | cut -d' ' -f1
    rm -rf "$d"
}

echo "== build 1: $TOP (commit $COMMIT)"
NO_LINTIAN=1 "$TOP/packaging/build-deb.sh" > "$TOP/target/repro-build1.log" 2>&1 \
    || { tail -30 "$TOP/target/repro-build1.log"; exit 1; }
echo "== build 2: $WT (commit $COMMIT, fresh cargo target directory)"
NO_LINTIAN=1 "$WT/packaging/build-deb.sh" > "$TOP/target/repro-build2.log" 2>&1 \
    || { tail -30 "$TOP/target/repro-build2.log"; exit 1; }

DEB1=$(ls "$TOP"/target/debian/libapache2-mod-oauth2-rs_*.deb)
DEB2=$(ls "$WT"/target/debian/libapache2-mod-oauth2-rs_*.deb)
S1=$(so_sum "$DEB1"); S2=$(so_sum "$DEB2")
D1=$(sha256sum "$DEB1" | cut -d' ' -f1); D2=$(sha256sum "$DEB2" | cut -d' ' -f1)
echo "mod_oauth2.so  build 1: $S1"
echo "mod_oauth2.so  build 2: $S2"
echo ".deb           build 1: $D1"
echo ".deb           build 2: $D2"
if [ "$S1" != "$S2" ]; then
    echo "NOT reproducible: the modules differ (logs: target/repro-build{1,2}.log)" >&2
    exit 1
fi
if [ "$D1" = "$D2" ]; then
    echo "reproducible: identical module and identical .deb"
else
    echo "reproducible module; the .deb files differ (compare with diffoscope)" >&2
    exit 1
fi
