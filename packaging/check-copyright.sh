#!/usr/bin/env bash
# Fails when a crate that is linked into the module (normal dependencies, proc-macros excluded:
# they run at build time only) has no "cargo-registry/NAME-*" entry in debian/copyright.
# Usage: packaging/check-copyright.sh [SOURCE_DIR]   (default: the repository)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${1:-$HERE/..}
COPYRIGHT=$HERE/debian/copyright
crates=$(cd "$SRC" && cargo tree --locked -e normal,no-proc-macro --prefix none -f '{p}' \
    | sed 's/ (\*)$//' | awk '$3 == "" { print $1 }' | sort -u)
missing=()
for c in $crates; do
    grep -q "cargo-registry/$c-\*" "$COPYRIGHT" || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "check-copyright: not in packaging/debian/copyright: ${missing[*]}" >&2
    echo "  add a 'Files: cargo-registry/NAME-*' paragraph with the crate's copyright and license" >&2
    exit 1
fi
echo "check-copyright: all $(echo "$crates" | wc -w) linked crates are listed in debian/copyright"
