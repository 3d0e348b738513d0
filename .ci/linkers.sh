#!/usr/bin/env bash
# The release binary links with any linker: GNU ld, lld and mold, as well as
# the toolchain's own rust-lld (the default on x86_64 Linux since Rust 1.90),
# so nothing in the build may depend on one of them (a linker script, a
# linker-only flag).
#
# One link per linker: after one normal release build, each relinks only the final
# binary crate (`cargo rustc` passes its flags to that crate alone; the
# library and the dependencies are reused). Each binary is checked to be the
# linker's work (the `.comment` section names lld and mold; GNU ld adds no
# name, so neither may be there) and to run. Measured on 2 busy cores: about
# 95 s a link (the link-time optimisation of the whole program), under 5 min
# in all. target/release is left with the mold-linked binary, which works
# like the others; the next `cargo build --release` relinks the usual one.
# Needs the Debian packages lld and mold (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/mpd-scrobbler

cargo build --release --quiet --bin mpd-scrobbler

# name, flags for the final crate, what `.comment` must say (the linker's
# own name and version; empty: neither lld nor mold)
check() {
    local name=$1 flags=$2 expect=$3 started comment
    started=$(date +%s)
    # shellcheck disable=SC2086 # the flags are words
    cargo rustc --release --quiet --bin mpd-scrobbler -- $flags
    comment=$(readelf -p .comment "$bin" 2>/dev/null || true)
    if [[ -n $expect ]]; then
        if ! grep -q "$expect" <<<"$comment"; then
            echo "linkers: $name did not link $bin (.comment: $comment)" >&2
            exit 1
        fi
    elif grep -qiE 'lld|mold' <<<"$comment"; then
        echo "linkers: $name did not link $bin (.comment: $comment)" >&2
        exit 1
    fi
    "$bin" --version >/dev/null
    echo "linkers: $name links the release binary ($(($(date +%s) - started)) s)"
}

# `linker-features=-lld` turns off the toolchain's rust-lld, so that the C
# compiler driver picks the system's linker (GNU ld unless told otherwise).
check "GNU ld" "-C linker-features=-lld" ""
check "lld" "-C linker-features=-lld -C link-arg=-fuse-ld=lld" "$(ld.lld --version | sed 's/ (compatible.*//')"
check "mold" "-C link-arg=-fuse-ld=mold" "$(mold --version | sed 's/ (compatible.*//')"
