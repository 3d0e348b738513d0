//! The `mpd-scrobbler` binary: everything happens in the library's `cli`.

fn main() -> std::process::ExitCode {
    mpd_scrobbler::cli::main()
}
