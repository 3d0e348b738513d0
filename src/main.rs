//! The `mpd-scrobbler` binary: glibc's allocator is set up here, before any
//! thread starts (the library forbids unsafe code); everything else happens
//! in the library's `cli`.

fn main() -> std::process::ExitCode {
    one_arena();
    mpd_scrobbler::cli::main()
}

/// Keep every thread's allocations in glibc's main arena.
///
/// glibc gives a thread that allocates while another holds the arena lock
/// an arena of its own, up to eight per core, and arenas never lend each
/// other their free memory. The queue is written on a thread of its own and
/// sled reads its segments on a pool of seven, beside the runtime thread, so
/// a backlog flush spread sled's pages and buffers over several arenas, each
/// keeping free space of its own: peak RSS 9.8 MiB through a 10,000-scrobble
/// flush to Last.fm, 12.0 with both targets, against 8.7 and 9.7 with one
/// arena. The threads mostly wait for the disk or the network, so they
/// seldom contend for its lock.
fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::ffi::c_int;
        // From <malloc.h>.
        const M_ARENA_MAX: c_int = -8;
        unsafe extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        // SAFETY: mallopt only sets an allocator parameter, and no other
        // thread exists yet. A refusal (0) leaves glibc's default, which
        // costs memory, not correctness.
        unsafe {
            mallopt(M_ARENA_MAX, 1);
        }
    }
}
