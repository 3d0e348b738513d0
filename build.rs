//! Build script: on Linux the binary is linked with `link/hot-code.ld`, which
//! puts the functions the daemon runs next to each other.
//!
//! The kernel maps a program's code in 64 KiB runs around every page that
//! runs, and the daemon runs about 1.3 MiB of functions spread over the
//! whole 3.8 MiB of code: nearly all of it was resident. Grouped, they take
//! about 1.9 MiB of the binary and the rest stays on disk (README,
//! "Where the memory goes"). A function missing from the list (new code, a
//! renamed dependency function) is only placed as usual, so a stale list
//! costs memory, never correctness; `link/hot-code.sh` regenerates it.
//! `MPD_SCROBBLER_HOT_CODE=0` links without it (that script needs this).

fn main() {
    println!("cargo:rerun-if-changed=link/hot-code.ld");
    println!("cargo:rerun-if-env-changed=MPD_SCROBBLER_HOT_CODE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let wanted = std::env::var("MPD_SCROBBLER_HOT_CODE").as_deref() != Ok("0");
    if linux && wanted {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        // A script with INSERT adds to the linker's default layout (GNU ld
        // and lld alike) instead of replacing it.
        println!("cargo:rustc-link-arg-bins=-T");
        println!("cargo:rustc-link-arg-bins={dir}/link/hot-code.ld");
    }
}
