#!/usr/bin/env bash
# Build the Debian package: target/debian/mpd-scrobbler_<version>_<arch>.deb
#
#   contrib/deb/build.sh                                   # this machine's architecture
#   contrib/deb/build.sh --target aarch64-unknown-linux-gnu       # arm64
#   contrib/deb/build.sh --target armv7-unknown-linux-gnueabihf   # armhf
#
# Needs dpkg-dev, and cargo-deb, which it installs when missing; a cross
# build needs what the README's "Install" section lists. Steps: the release binary (cargo build, once); from it, under
# target/deb/, the man pages (gzipped), the shell completions and the units
# with the package's paths; the Debian changelog from CHANGELOG.md; then
# cargo-deb --no-build packs them as [package.metadata.deb] in Cargo.toml
# lists. Prints the path of the package.
set -euo pipefail
cd "$(dirname "$0")/../.."

target=()
triple=""
while (($#)); do
    case $1 in
    --target) triple=$2; target=(--target "$2"); shift 2 ;;
    --target=*) triple=${1#--target=}; target=(--target "$triple"); shift ;;
    *) echo "usage: $0 [--target TRIPLE]" >&2; exit 2 ;;
    esac
done

# The version this packaging was written and checked with.
cargo_deb=3.8.0
if ! command -v cargo-deb >/dev/null; then
    echo "build.sh: installing cargo-deb $cargo_deb (once)" >&2
    cargo install cargo-deb --version "$cargo_deb" --locked
fi
# cargo-deb finds the package's dependencies (the C library) with it.
command -v dpkg-shlibdeps >/dev/null || {
    echo "build.sh: dpkg-shlibdeps is missing: sudo apt-get install dpkg-dev" >&2
    exit 1
}

# Where cargo puts things (CARGO_TARGET_DIR and .cargo/config included).
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
cargo build --release --locked "${target[@]}"
bin=$target_dir/${triple:+$triple/}release/mpd-scrobbler

# The man pages and completions are the same on every architecture; a
# binary of another one may not run here (no qemu), and then a build for
# this machine writes them.
runner=$bin
if ! "$runner" --version >/dev/null 2>&1; then
    cargo build --locked
    runner=$target_dir/debug/mpd-scrobbler
fi

out=target/deb
rm -rf "$out"
mkdir -p "$out/man" "$out/completions" "$out/units/user"

"$runner" manpage --dir "$out/man" >/dev/null
gzip -9n "$out"/man/*

"$runner" completions bash >"$out/completions/mpd-scrobbler"
"$runner" completions zsh >"$out/completions/_mpd-scrobbler"
"$runner" completions fish >"$out/completions/mpd-scrobbler.fish"

# The units in contrib/ are for a binary installed by hand; the package's
# runs /usr/bin/mpd-scrobbler, and its header says how to turn it on.
unit() { # SOURCE HEADER
    {
        printf '%s\n' "$2"
        sed -e '1,/^\[Unit\]$/{/^\[Unit\]$/!d}' \
            -e 's|/usr/local/bin/mpd-scrobbler|/usr/bin/mpd-scrobbler|' \
            -e 's|%h/\.local/bin/mpd-scrobbler|/usr/bin/mpd-scrobbler|' "$1"
    }
}
unit contrib/system/mpd-scrobbler.service \
"# mpd-scrobbler system service, from the Debian package. It is not enabled
# on install: edit /etc/mpd-scrobbler/config.toml, then
#   systemctl enable --now mpd-scrobbler
# Authorise a target (writes into the service's state directory):
#   STATE_DIRECTORY=/var/lib/mpd-scrobbler mpd-scrobbler -c /etc/mpd-scrobbler/config.toml auth lastfm
# The plays stay in /var/lib/mpd-scrobbler, even after apt purge." >"$out/units/mpd-scrobbler.service"
unit contrib/mpd-scrobbler.service \
"# mpd-scrobbler user service, from the Debian package. For one user:
#   systemctl --user enable --now mpd-scrobbler
# Config: ~/.config/mpd-scrobbler/config.toml (mpd-scrobbler config init);
# plays and sessions: ~/.local/state/mpd-scrobbler." >"$out/units/user/mpd-scrobbler.service"

gzip -9n <README.md >"$out/README.md.gz"

version=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"name":"mpd-scrobbler","version":"\([^"]*\)".*/\1/p')
maintainer=$(sed -n 's/^maintainer = "\(.*\)"$/\1/p' Cargo.toml)
contrib/deb/changelog.sh CHANGELOG.md "$version" "$maintainer" | gzip -9n >"$out/changelog.gz"

deb=$(cargo deb --no-build "${target[@]}" | tail -n 1)
# Without the target's C library known to dpkg, cargo-deb only warns and
# leaves the dependency out: a package that installs and cannot run.
dpkg-deb -f "$deb" Depends | grep -q 'libc6' || {
    echo "build.sh: $deb does not depend on libc6 (dpkg-shlibdeps found no C library for the target;" \
        "see README, Install)" >&2
    exit 1
}
echo "$deb"
