#!/usr/bin/env bash
# vendor/sled is sled 0.34.7 from crates.io plus vendor/sled.patch, minus the
# files a build does not need. This script rebuilds that tree from the
# published crate, so the 20,000 vendored lines never need reviewing: only the
# patch does.
#
#   vendor/sled.sh check   rebuild into a temporary directory and fail unless
#                          it equals vendor/sled (CI runs this)
#   vendor/sled.sh apply   rebuild vendor/sled itself (after editing the patch)
#   vendor/sled.sh diff    write vendor/sled.patch from vendor/sled as edited
#
# The crate comes through cargo from crates.io and is checked against the
# checksum crates.io publishes for it.
set -euo pipefail
cd "$(dirname "$0")"

VERSION=0.34.7
SHA256=7f96b4737c2ce5987354855aed3797279def4ebf734436c6aa4552cf8e169935
# Files of the published crate that the build does not use.
UNUSED=(.cargo_vcs_info.json .github .gitignore CONTRIBUTING.md Cargo.lock Cargo.toml.orig
        RELEASE_CHECKLIST.md art code-of-conduct.md tests tsan_suppressions.txt)
# Files of ours in the vendored tree.
OURS=(PATCHED.md)

mode=${1:-}
case "$mode" in check | apply | diff) ;; *) echo "usage: $0 check|apply|diff" >&2; exit 2 ;; esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Let cargo fetch the crate into its cache (a throwaway manifest asks for it).
mkdir -p "$work/fetch/src"
printf '[package]\nname = "fetch-sled"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nsled = "=%s"\n' \
    "$VERSION" >"$work/fetch/Cargo.toml"
echo 'fn main() {}' >"$work/fetch/src/main.rs"
cargo fetch --quiet --manifest-path "$work/fetch/Cargo.toml"
crate=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name "sled-$VERSION.crate" | head -n 1)
[ -n "$crate" ] || { echo "sled-$VERSION.crate not found in cargo's cache" >&2; exit 1; }
echo "$SHA256  $crate" | sha256sum --check --quiet

tar -xzf "$crate" -C "$work"
tree="$work/sled-$VERSION"
if [ "$mode" = diff ]; then
    # The published tree as a/, the edited one as b/, minus our own files.
    mkdir "$work/diff"
    (cd "$tree" && rm -rf "${UNUSED[@]}")
    mv "$tree" "$work/diff/a"
    cp -a sled "$work/diff/b"
    for f in "${OURS[@]}"; do rm -f "$work/diff/b/$f"; done
    (cd "$work/diff" && diff -ruN a b) | sed -e 's/^\(---\|+++\) \([ab]\/[^\t]*\)\t.*/\1 \2/' -e '/^diff -ruN/d' >sled.patch || true
    echo "vendor/sled.patch written from vendor/sled"
    exit 0
fi
(cd "$tree" && rm -rf "${UNUSED[@]}" && patch --quiet -p1 --no-backup-if-mismatch) <sled.patch
for f in "${OURS[@]}"; do cp "sled/$f" "$tree/$f"; done

if [ "$mode" = apply ]; then
    rm -rf sled
    cp -a "$tree" sled
    echo "vendor/sled rebuilt from sled-$VERSION.crate + sled.patch"
elif diff -r "$tree" sled; then
    echo "vendor/sled equals sled-$VERSION.crate + vendor/sled.patch"
else
    echo "vendor/sled differs from sled-$VERSION.crate + vendor/sled.patch (see above)" >&2
    exit 1
fi
