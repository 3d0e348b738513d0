//! A power-cut file system for the tests: a FUSE file system held in the
//! test process's memory that keeps, for every inode, what processes see
//! (its *current* state) and what would survive a power cut (its *durable*
//! state), after LazyFS (INESC TEC). `fsync`/`fdatasync` of a file makes its
//! current content and attributes durable; `fsync` of a directory makes its
//! current entry list durable; nothing else does. [`PowerCutFs::cut`] drops
//! everything that is not durable, and unmounts and mounts again so that no
//! kernel cache (pages, dentries, attributes) outlives the cut.
//! docs/testing.md says what it models and what it does not.
//!
//! As root, `fuser` mounts with mount(2) itself: no libfuse and no
//! `fusermount3` are needed. Locks (`flock`, `fcntl`) are left to the kernel,
//! which keeps them locally since the file system does not ask for them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use fuser::{
    BackgroundSession, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, SessionACL, TimeOrNow, WriteFlags,
};

/// Entries and attributes are never cached by the kernel.
const TTL: Duration = Duration::ZERO;
const GENERATION: Generation = Generation(0);
const ROOT: u64 = 1;
const BLOCK_SIZE: u32 = 4096;
/// How long an unmount may find the mount busy (a child forked by another
/// test holding a copy of a descriptor until its exec) before it fails.
const UNMOUNT_PATIENCE: Duration = Duration::from_secs(10);

/// A mounted power-cut file system; dropping it unmounts it.
pub struct PowerCutFs {
    state: Arc<Mutex<State>>,
    mountpoint: PathBuf,
    session: Option<BackgroundSession>,
    /// The directory made by [`PowerCutFs::mount_temp`], removed after the
    /// unmount.
    temp: Option<tempfile::TempDir>,
}

/// What the file system has been asked to do since it was first mounted
/// (cuts do not reset it). Paths are those under the mount point at the time
/// of the call, like `/db/conf`.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Per regular file.
    pub files: BTreeMap<String, FileStats>,
    /// `fsync` calls on each directory.
    pub dirs: BTreeMap<String, u64>,
    /// `fsync` calls on files, in all.
    pub fsync: u64,
    /// `fdatasync` calls on files, in all.
    pub fdatasync: u64,
    /// `fsync` calls on directories, in all.
    pub fsyncdir: u64,
    /// Write requests, in all.
    pub writes: u64,
    /// Bytes written, in all.
    pub bytes_written: u64,
    /// Power cuts so far.
    pub cuts: u64,
}

/// The counters of one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStats {
    /// `fsync` calls (the kernel's FUSE fsync request without datasync).
    pub fsync: u64,
    /// `fdatasync` calls (the request with datasync).
    pub fdatasync: u64,
    /// Write requests.
    pub writes: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

impl FileStats {
    /// Syncs of either kind.
    pub fn syncs(&self) -> u64 {
        self.fsync + self.fdatasync
    }
}

impl Stats {
    /// The counters of the files whose path ends with `suffix`, added up.
    pub fn file(&self, suffix: &str) -> FileStats {
        let mut sum = FileStats::default();
        for (_, f) in self.files.iter().filter(|(p, _)| p.ends_with(suffix)) {
            sum.fsync += f.fsync;
            sum.fdatasync += f.fdatasync;
            sum.writes += f.writes;
            sum.bytes_written += f.bytes_written;
        }
        sum
    }

    /// `fsync` calls on the directories whose path ends with `suffix`.
    pub fn dir(&self, suffix: &str) -> u64 {
        self.dirs
            .iter()
            .filter(|(p, _)| p.ends_with(suffix))
            .map(|(_, n)| n)
            .sum()
    }
}

/// What a torn cut did to one file that had writes not yet synced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornFile {
    /// Its durable path, like `/db/snap`.
    pub path: String,
    /// Its operations (writes and size changes) since its last sync.
    pub pending: usize,
    /// How many of them were kept whole, from the first.
    pub kept: usize,
    /// Of the next one, if it was a write kept in part: the bytes kept and
    /// its length.
    pub partial: Option<(usize, usize)>,
}

impl PowerCutFs {
    /// Whether a power-cut file system can be mounted here, found out once
    /// by mounting and unmounting one; the reason when it cannot.
    pub fn available() -> Result<(), String> {
        static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
        PROBE
            .get_or_init(|| {
                if !rustix::process::geteuid().is_root() {
                    return Err("not root (the test mounts with mount(2))".to_owned());
                }
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/fuse")
                    .map_err(|e| format!("/dev/fuse: {e}"))?;
                let fs = PowerCutFs::mount_temp()
                    .map_err(|e| format!("mounting a FUSE file system: {e}"))?;
                fs.unmount()
                    .map_err(|e| format!("unmounting a FUSE file system: {e}"))
            })
            .clone()
    }

    /// A power-cut file system in a new temporary directory for the test
    /// `what`, or `None` with the reason printed when FUSE cannot be had
    /// here. With `CI` set, that is a failure instead.
    pub fn for_test(what: &str) -> Option<PowerCutFs> {
        match PowerCutFs::available() {
            Ok(()) => Some(PowerCutFs::mount_temp().expect("mounting the power-cut file system")),
            Err(reason) => {
                let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
                assert!(!ci, "{what} needs FUSE, and in CI it must run: {reason}");
                eprintln!("SKIPPED: {what} needs FUSE: {reason}");
                None
            }
        }
    }

    /// Mounts an empty power-cut file system on `mountpoint` (an existing
    /// directory), served by a thread of this process; returns once the
    /// kernel has the mount.
    pub fn mount(mountpoint: &Path) -> io::Result<PowerCutFs> {
        let state = Arc::new(Mutex::new(State::new()));
        let session = start(&state, mountpoint)?;
        Ok(PowerCutFs {
            state,
            mountpoint: mountpoint.to_path_buf(),
            session: Some(session),
            temp: None,
        })
    }

    /// Mounts one on a new temporary directory, removed when it is dropped.
    pub fn mount_temp() -> io::Result<PowerCutFs> {
        let temp = tempfile::Builder::new().prefix("powercut").tempdir()?;
        let mut fs = PowerCutFs::mount(temp.path())?;
        fs.temp = Some(temp);
        Ok(fs)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// A power cut: everything not durable is lost. Processes using the
    /// file system must be gone (killed and waited for) and the test's own
    /// files on it closed, since it is unmounted and mounted again.
    pub fn cut(&mut self) -> io::Result<()> {
        self.cut_with(None).map(drop)
    }

    /// A power cut during which each file with writes not yet synced keeps a
    /// prefix of them, the last one kept possibly only in part (a torn
    /// write); the choice follows `seed`.
    pub fn cut_torn(&mut self, seed: u64) -> io::Result<Vec<TornFile>> {
        self.cut_with(Some(("", seed)))
    }

    /// [`PowerCutFs::cut_torn`] for the files whose durable path ends with
    /// `path_suffix` only; the others lose all their unsynced writes.
    pub fn cut_torn_file(&mut self, path_suffix: &str, seed: u64) -> io::Result<Vec<TornFile>> {
        self.cut_with(Some((path_suffix, seed)))
    }

    /// Makes everything durable as it is now, as a perfect `sync` would:
    /// for files that a test puts in place before the part under test.
    pub fn persist_all(&self) {
        let mut st = lock(&self.state);
        for node in st.nodes.values_mut() {
            node.dur = node.cur.clone();
            node.pending.clear();
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        lock(&self.state).stats.clone()
    }

    /// Unmounts it, reporting a failure that `Drop` would only print.
    pub fn unmount(mut self) -> io::Result<()> {
        self.stop()
    }

    fn cut_with(&mut self, tear: Option<(&str, u64)>) -> io::Result<Vec<TornFile>> {
        self.stop()?;
        let torn = lock(&self.state).cut(tear);
        self.session = Some(start(&self.state, &self.mountpoint)?);
        Ok(torn)
    }

    /// Unmounts and waits for the session's thread to end.
    fn stop(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + UNMOUNT_PATIENCE;
        loop {
            match rustix::mount::unmount(&self.mountpoint, rustix::mount::UnmountFlags::empty()) {
                Ok(()) => break,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::BUSY) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    self.session = Some(session);
                    return Err(io::Error::other(format!(
                        "unmounting {}: {e} (are processes or open files still using it?)",
                        self.mountpoint.display()
                    )));
                }
            }
        }
        // The kernel ends the connection with the unmount, and the session's
        // read of /dev/fuse then fails with ENODEV.
        let deadline = Instant::now() + UNMOUNT_PATIENCE;
        while !session.guard.is_finished() {
            if Instant::now() >= deadline {
                // Never dropped: its drop would unmount whatever is mounted
                // at the path by then.
                std::mem::forget(session);
                return Err(io::Error::other("the FUSE session did not end"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Joining drops fuser's own mount guard, whose unmount of the path
        // then finds nothing mounted there (EINVAL, ignored), so this must
        // happen before any new mount. The read may also fail with
        // ECONNABORTED instead (about one cut in a few thousand on a 6.18
        // kernel): the connection is gone either way, and what the files
        // hold is in `state`, not in the kernel.
        match session.join() {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::CONNABORTED.raw_os_error()) => {
                Ok(())
            }
            ended => ended,
        }
    }
}

impl Drop for PowerCutFs {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("power-cut file system: {e}; detaching it");
            let _ = rustix::mount::unmount(&self.mountpoint, rustix::mount::UnmountFlags::DETACH);
            if let Some(session) = self.session.take() {
                std::mem::forget(session);
            }
        }
        // `temp` is dropped after this, once nothing is mounted on it.
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn start(state: &Arc<Mutex<State>>, mountpoint: &Path) -> io::Result<BackgroundSession> {
    let epoch = lock(state).epoch;
    let fs = Fuse {
        state: Arc::clone(state),
        epoch,
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("powercut".to_owned()),
        MountOption::DefaultPermissions,
    ];
    config.acl = SessionACL::All;
    fuser::spawn_mount(fs, mountpoint, &config)
}

/// splitmix64: a small seeded generator for reproducible choices.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------
// The state: inodes with a current and a durable version.

#[derive(Clone, Debug)]
struct Attrs {
    perm: u16,
    uid: u32,
    gid: u32,
    rdev: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

#[derive(Clone, Debug)]
enum Body {
    File(Vec<u8>),
    Dir(BTreeMap<OsString, u64>),
    Symlink(PathBuf),
    /// A FIFO or a socket: no content.
    Special(FileType),
}

impl Body {
    fn kind(&self) -> FileType {
        match self {
            Body::File(_) => FileType::RegularFile,
            Body::Dir(_) => FileType::Directory,
            Body::Symlink(_) => FileType::Symlink,
            Body::Special(kind) => *kind,
        }
    }
}

#[derive(Clone, Debug)]
struct Version {
    attrs: Attrs,
    body: Body,
}

/// A change to a file's content since its last sync.
#[derive(Clone, Debug)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug)]
struct Node {
    cur: Version,
    dur: Version,
    /// The content changes since the last sync, for torn cuts.
    pending: Vec<Op>,
    /// Directory entries naming it in the current tree (not for directories).
    nlink: u32,
}

struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// Bumped by each cut: a session of an earlier mount gets EIO.
    epoch: u64,
    stats: Stats,
}

type Res<T> = Result<T, Errno>;

fn to_usize(n: u64) -> Res<usize> {
    usize::try_from(n).map_err(|_| Errno::EFBIG)
}

fn write_at(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) -> Res<()> {
    let start = to_usize(offset)?;
    let end = start.checked_add(bytes.len()).ok_or(Errno::EFBIG)?;
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(bytes);
    Ok(())
}

fn apply(data: &mut Vec<u8>, op: &Op) {
    // Both succeeded when they were first applied.
    match op {
        Op::Write {
            offset,
            data: bytes,
        } => write_at(data, *offset, bytes).expect("replayed write"),
        Op::SetLen(len) => data.resize(to_usize(*len).expect("replayed size"), 0),
    }
}

impl State {
    fn new() -> State {
        let now = SystemTime::now();
        let root = Version {
            attrs: Attrs {
                perm: 0o755,
                uid: 0,
                gid: 0,
                rdev: 0,
                atime: now,
                mtime: now,
                ctime: now,
            },
            body: Body::Dir(BTreeMap::new()),
        };
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                cur: root.clone(),
                dur: root,
                pending: Vec::new(),
                nlink: 1,
            },
        );
        State {
            nodes,
            next_ino: ROOT + 1,
            epoch: 0,
            stats: Stats::default(),
        }
    }

    fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn entries(&self, dir: u64) -> Res<&BTreeMap<OsString, u64>> {
        match &self.node(dir)?.cur.body {
            Body::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Res<&mut BTreeMap<OsString, u64>> {
        let node = self.node_mut(dir)?;
        let now = SystemTime::now();
        node.cur.attrs.mtime = now;
        node.cur.attrs.ctime = now;
        match &mut node.cur.body {
            Body::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn is_dir(&self, ino: u64) -> bool {
        self.nodes
            .get(&ino)
            .is_some_and(|n| matches!(n.cur.body, Body::Dir(_)))
    }

    fn attr(&self, ino: u64) -> Res<FileAttr> {
        let node = self.node(ino)?;
        let (size, nlink) = match &node.cur.body {
            Body::File(data) => (data.len() as u64, node.nlink),
            Body::Dir(entries) => {
                let subdirs = entries.values().filter(|&&c| self.is_dir(c)).count();
                (BLOCK_SIZE.into(), 2 + subdirs as u32)
            }
            Body::Symlink(target) => (target.as_os_str().len() as u64, node.nlink),
            Body::Special(_) => (0, node.nlink),
        };
        let a = &node.cur.attrs;
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: a.atime,
            mtime: a.mtime,
            ctime: a.ctime,
            crtime: a.ctime,
            kind: node.cur.body.kind(),
            perm: a.perm,
            nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: a.rdev,
            blksize: BLOCK_SIZE,
            flags: 0,
        })
    }

    /// The current path of `ino` under the mount point.
    fn path_of(&self, ino: u64) -> String {
        if ino == ROOT {
            return "/".to_owned();
        }
        let mut queue = VecDeque::from([(ROOT, String::new())]);
        while let Some((dir, path)) = queue.pop_front() {
            let Ok(entries) = self.entries(dir) else {
                continue;
            };
            for (name, &child) in entries {
                let child_path = format!("{path}/{}", name.to_string_lossy());
                if child == ino {
                    return child_path;
                }
                if self.is_dir(child) {
                    queue.push_back((child, child_path));
                }
            }
        }
        format!("<unlinked inode {ino}>")
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Res<FileAttr> {
        let ino = *self.entries(parent)?.get(name).ok_or(Errno::ENOENT)?;
        self.attr(ino)
    }

    fn create(
        &mut self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        perm: u32,
        body: Body,
    ) -> Res<FileAttr> {
        if self.entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let now = SystemTime::now();
        let version = Version {
            attrs: Attrs {
                perm: (perm & 0o7777) as u16,
                uid: req.uid(),
                gid: req.gid(),
                rdev: 0,
                atime: now,
                mtime: now,
                ctime: now,
            },
            body,
        };
        // A new inode is durable as created (empty): whether it survives a
        // cut is up to its directory entry.
        self.nodes.insert(
            ino,
            Node {
                cur: version.clone(),
                dur: version,
                pending: Vec::new(),
                nlink: 1,
            },
        );
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        self.attr(ino)
    }

    fn unlink(&mut self, parent: u64, name: &OsStr, dir: bool) -> Res<()> {
        let ino = *self.entries(parent)?.get(name).ok_or(Errno::ENOENT)?;
        match (&self.node(ino)?.cur.body, dir) {
            (Body::Dir(entries), true) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
            (Body::Dir(_), true) => {}
            (Body::Dir(_), false) => return Err(Errno::EISDIR),
            (_, true) => return Err(Errno::ENOTDIR),
            (_, false) => {}
        }
        self.entries_mut(parent)?.remove(name);
        let node = self.node_mut(ino)?;
        node.nlink = node.nlink.saturating_sub(1);
        node.cur.attrs.ctime = SystemTime::now();
        Ok(())
    }

    fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Res<()> {
        let known = RenameFlags::RENAME_NOREPLACE | RenameFlags::RENAME_EXCHANGE;
        if !known.contains(flags) || flags == known {
            return Err(Errno::EINVAL);
        }
        let src = *self.entries(parent)?.get(name).ok_or(Errno::ENOENT)?;
        let dst = self.entries(newparent)?.get(newname).copied();
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            let dst = dst.ok_or(Errno::ENOENT)?;
            self.entries_mut(parent)?.insert(name.to_owned(), dst);
            self.entries_mut(newparent)?.insert(newname.to_owned(), src);
            return Ok(());
        }
        if let Some(dst) = dst {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if dst == src {
                return Ok(());
            }
            match (&self.node(src)?.cur.body, &self.node(dst)?.cur.body) {
                (Body::Dir(_), Body::Dir(entries)) if !entries.is_empty() => {
                    return Err(Errno::ENOTEMPTY);
                }
                (Body::Dir(_), Body::Dir(_)) => {}
                (Body::Dir(_), _) => return Err(Errno::ENOTDIR),
                (_, Body::Dir(_)) => return Err(Errno::EISDIR),
                _ => {}
            }
            let replaced = self.node_mut(dst)?;
            replaced.nlink = replaced.nlink.saturating_sub(1);
        }
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(newparent)?.insert(newname.to_owned(), src);
        self.node_mut(src)?.cur.attrs.ctime = SystemTime::now();
        Ok(())
    }

    fn link(&mut self, ino: u64, newparent: u64, newname: &OsStr) -> Res<FileAttr> {
        if self.is_dir(ino) {
            return Err(Errno::EPERM);
        }
        if self.entries(newparent)?.contains_key(newname) {
            return Err(Errno::EEXIST);
        }
        self.node(ino)?;
        self.entries_mut(newparent)?.insert(newname.to_owned(), ino);
        let node = self.node_mut(ino)?;
        node.nlink += 1;
        node.cur.attrs.ctime = SystemTime::now();
        self.attr(ino)
    }

    fn file_mut(&mut self, ino: u64) -> Res<(&mut Vec<u8>, &mut Vec<Op>, &mut Attrs)> {
        let node = self.node_mut(ino)?;
        match &mut node.cur.body {
            Body::File(data) => Ok((data, &mut node.pending, &mut node.cur.attrs)),
            Body::Dir(_) => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &mut self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
    ) -> Res<FileAttr> {
        let now = SystemTime::now();
        let time = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => now,
        };
        if let Some(size) = size {
            let len = to_usize(size)?;
            let (data, pending, attrs) = self.file_mut(ino)?;
            data.resize(len, 0);
            pending.push(Op::SetLen(size));
            attrs.mtime = now;
            attrs.ctime = now;
        }
        let attrs = &mut self.node_mut(ino)?.cur.attrs;
        if let Some(mode) = mode {
            attrs.perm = (mode & 0o7777) as u16;
            attrs.ctime = now;
        }
        if let Some(uid) = uid {
            attrs.uid = uid;
            attrs.ctime = now;
        }
        if let Some(gid) = gid {
            attrs.gid = gid;
            attrs.ctime = now;
        }
        if let Some(t) = atime {
            attrs.atime = time(t);
        }
        if let Some(t) = mtime {
            attrs.mtime = time(t);
            attrs.ctime = now;
        }
        if let Some(t) = ctime {
            attrs.ctime = t;
        }
        self.attr(ino)
    }

    fn read(&self, ino: u64, offset: u64, size: u32) -> Res<&[u8]> {
        match &self.node(ino)?.cur.body {
            Body::File(data) => {
                let start = to_usize(offset).unwrap_or(usize::MAX).min(data.len());
                let end = start.saturating_add(size as usize).min(data.len());
                Ok(&data[start..end])
            }
            Body::Dir(_) => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Res<u32> {
        let (data, pending, attrs) = self.file_mut(ino)?;
        write_at(data, offset, bytes)?;
        pending.push(Op::Write {
            offset,
            data: bytes.to_vec(),
        });
        let now = SystemTime::now();
        attrs.mtime = now;
        attrs.ctime = now;
        let len = bytes.len() as u64;
        let path = self.path_of(ino);
        let file = self.stats.files.entry(path).or_default();
        file.writes += 1;
        file.bytes_written += len;
        self.stats.writes += 1;
        self.stats.bytes_written += len;
        u32::try_from(bytes.len()).map_err(|_| Errno::EINVAL)
    }

    fn fallocate(&mut self, ino: u64, offset: u64, length: u64, mode: i32) -> Res<()> {
        let (data, pending, attrs) = self.file_mut(ino)?;
        match mode {
            0 => {
                let end = to_usize(offset.checked_add(length).ok_or(Errno::EFBIG)?)?;
                if end > data.len() {
                    data.resize(end, 0);
                    pending.push(Op::SetLen(end as u64));
                    let now = SystemTime::now();
                    attrs.mtime = now;
                    attrs.ctime = now;
                }
                Ok(())
            }
            // Space is never short: nothing to reserve.
            libc_consts::FALLOC_FL_KEEP_SIZE => Ok(()),
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    fn fsync(&mut self, ino: u64, datasync: bool) -> Res<()> {
        let node = self.node_mut(ino)?;
        node.dur = node.cur.clone();
        node.pending.clear();
        let dir = matches!(node.cur.body, Body::Dir(_));
        let path = self.path_of(ino);
        if dir {
            *self.stats.dirs.entry(path).or_default() += 1;
            self.stats.fsyncdir += 1;
        } else {
            let file = self.stats.files.entry(path).or_default();
            if datasync {
                file.fdatasync += 1;
                self.stats.fdatasync += 1;
            } else {
                file.fsync += 1;
                self.stats.fsync += 1;
            }
        }
        Ok(())
    }

    /// The power cut, with the file system unmounted.
    fn cut(&mut self, tear: Option<(&str, u64)>) -> Vec<TornFile> {
        // The durable tree, breadth first from the root, in name order. A
        // directory reached twice (renamed between two directories and only
        // the target synced) keeps its first entry only.
        let mut paths: BTreeMap<String, u64> = BTreeMap::new();
        let mut links: HashMap<u64, u32> = HashMap::from([(ROOT, 1)]);
        let mut seen_dirs = HashSet::from([ROOT]);
        let mut queue = VecDeque::from([(ROOT, String::new())]);
        while let Some((dir, path)) = queue.pop_front() {
            let Body::Dir(entries) = &self.nodes[&dir].dur.body else {
                continue;
            };
            let mut dropped = Vec::new();
            for (name, &child) in entries {
                let Some(node) = self.nodes.get(&child) else {
                    dropped.push(name.clone());
                    continue;
                };
                let child_path = format!("{path}/{}", name.to_string_lossy());
                if matches!(node.dur.body, Body::Dir(_)) {
                    if !seen_dirs.insert(child) {
                        dropped.push(name.clone());
                        continue;
                    }
                    queue.push_back((child, child_path.clone()));
                }
                *links.entry(child).or_default() += 1;
                paths.entry(child_path).or_insert(child);
            }
            if let Body::Dir(entries) = &mut self.nodes.get_mut(&dir).expect("a directory").dur.body
            {
                for name in dropped {
                    entries.remove(&name);
                }
            }
        }
        self.nodes.retain(|ino, _| links.contains_key(ino));

        let mut torn = Vec::new();
        if let Some((suffix, seed)) = tear {
            let mut rng = SplitMix64(seed);
            let mut done = HashSet::new();
            for (path, ino) in &paths {
                let node = self.nodes.get_mut(ino).expect("a durable inode");
                if node.pending.is_empty() || !path.ends_with(suffix) || !done.insert(*ino) {
                    continue;
                }
                let Body::File(data) = &mut node.dur.body else {
                    continue;
                };
                let pending = node.pending.len();
                let kept = rng.below(pending + 1);
                for op in &node.pending[..kept] {
                    apply(data, op);
                }
                let partial = match node.pending.get(kept) {
                    Some(Op::Write {
                        offset,
                        data: bytes,
                    }) => {
                        let part = rng.below(bytes.len() + 1);
                        if part > 0 {
                            write_at(data, *offset, &bytes[..part]).expect("replayed write");
                        }
                        Some((part, bytes.len()))
                    }
                    _ => None,
                };
                torn.push(TornFile {
                    path: path.clone(),
                    pending,
                    kept,
                    partial,
                });
            }
        }

        for (ino, node) in &mut self.nodes {
            node.pending.clear();
            node.cur = node.dur.clone();
            node.nlink = links[ino];
        }
        self.epoch += 1;
        self.stats.cuts += 1;
        torn
    }
}

/// Constants of fallocate(2), as `libc` (not a dependency here) has them.
mod libc_consts {
    pub const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
}

// ---------------------------------------------------------------------------
// The FUSE side.

struct Fuse {
    state: Arc<Mutex<State>>,
    /// The state's epoch when this session was mounted.
    epoch: u64,
}

impl Fuse {
    fn run<T>(&self, f: impl FnOnce(&mut State) -> Res<T>) -> Res<T> {
        let mut st = lock(&self.state);
        if st.epoch != self.epoch {
            return Err(Errno::EIO);
        }
        f(&mut st)
    }

    fn entry(&self, reply: ReplyEntry, f: impl FnOnce(&mut State) -> Res<FileAttr>) {
        match self.run(f) {
            Ok(attr) => reply.entry(&TTL, &attr, GENERATION),
            Err(e) => reply.error(e),
        }
    }

    fn empty(&self, reply: ReplyEmpty, f: impl FnOnce(&mut State) -> Res<()>) {
        match self.run(f) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

fn body_for_mode(mode: u32) -> Res<Body> {
    const S_IFMT: u32 = 0o170_000;
    match mode & S_IFMT {
        0o100_000 | 0 => Ok(Body::File(Vec::new())),
        0o010_000 => Ok(Body::Special(FileType::NamedPipe)),
        0o140_000 => Ok(Body::Special(FileType::Socket)),
        _ => Err(Errno::EPERM),
    }
}

impl Filesystem for Fuse {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |st| st.lookup(parent.0, name));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.run(|st| st.attr(ino.0)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.run(|st| st.setattr(ino.0, mode, uid, gid, size, atime, mtime, ctime)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.run(|st| match &st.node(ino.0)?.cur.body {
            Body::Symlink(target) => Ok(target.as_os_str().as_bytes().to_vec()),
            _ => Err(Errno::EINVAL),
        }) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        self.entry(reply, |st| {
            let body = body_for_mode(mode)?;
            st.create(req, parent.0, name, mode, body)
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.entry(reply, |st| {
            st.create(req, parent.0, name, mode, Body::Dir(BTreeMap::new()))
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |st| st.unlink(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |st| st.unlink(parent.0, name, true));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.entry(reply, |st| {
            st.create(
                req,
                parent.0,
                link_name,
                0o777,
                Body::Symlink(target.to_path_buf()),
            )
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |st| {
            st.rename(parent.0, name, newparent.0, newname, flags)
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.entry(reply, |st| st.link(ino.0, newparent.0, newname));
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // No FOPEN_KEEP_CACHE: the kernel drops the file's cached pages at
        // every open. No FOPEN_DIRECT_IO: mmap works (SQLite's -shm).
        match self.run(|st| st.node(ino.0).map(drop)) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let st = lock(&self.state);
        if st.epoch != self.epoch {
            reply.error(Errno::EIO);
            return;
        }
        match st.read(ino.0, offset, size) {
            Ok(data) => reply.data(data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.run(|st| st.write(ino.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |st| st.fsync(ino.0, datasync));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listing = self.run(|st| {
            let mut listing = vec![
                (ino.0, FileType::Directory, OsString::from(".")),
                (ino.0, FileType::Directory, OsString::from("..")),
            ];
            for (name, &child) in st.entries(ino.0)? {
                listing.push((child, st.node(child)?.cur.body.kind(), name.clone()));
            }
            Ok(listing)
        });
        match listing {
            Ok(listing) => {
                let skip = usize::try_from(offset).unwrap_or(usize::MAX);
                for (i, (child, kind, name)) in listing.into_iter().enumerate().skip(skip) {
                    if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |st| st.fsync(ino.0, datasync));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // 64 GiB, all of it free.
        let blocks = 1 << 24;
        reply.statfs(
            blocks,
            blocks,
            blocks,
            1 << 20,
            1 << 20,
            BLOCK_SIZE,
            255,
            BLOCK_SIZE,
        );
    }

    // Extended attributes: ENOSYS makes the kernel answer EOPNOTSUPP (=
    // ENOTSUP) from then on without asking again (it would ask at every
    // write, for security.capability).
    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.run(|st| {
            let body = body_for_mode(mode)?;
            st.create(req, parent.0, name, mode, body)
        }) {
            Ok(attr) => reply.created(&TTL, &attr, GENERATION, FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |st| st.fallocate(ino.0, offset, length, mode));
    }
}
