//! The power-cut file system itself (common/powercut.rs): what survives a
//! cut, from this process and from child processes killed with SIGKILL, and
//! that sled and SQLite work on it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::powercut::{PowerCutFs, SplitMix64, TornFile};

/// How long a child process may take to get ready on a busy machine.
const CHILD_READY: Duration = Duration::from_secs(60);

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

fn write_synced(path: &Path, data: &[u8]) {
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Starts `cmd`, waits (with a deadline) for it to print `ready`, and
/// returns it still running.
fn spawn_until_ready(cmd: &mut Command) -> Child {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    match rx.recv_timeout(CHILD_READY) {
        Ok(line) if line == "ready" => child,
        other => {
            let _ = child.kill();
            let status = child.wait();
            panic!("child not ready: {other:?}, {status:?}");
        }
    }
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn python(script: &str, args: &[&Path]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    cmd
}

#[test]
fn unsynced_writes_are_lost_synced_ones_kept() {
    let Some(mut fs) = PowerCutFs::for_test("unsynced_writes_are_lost_synced_ones_kept") else {
        return;
    };
    let root = fs.path().to_path_buf();
    let kept = pattern(10_000, 1);
    write_synced(&root.join("kept"), &kept);
    sync_dir(&root);
    // After the directory's sync: neither the entry nor the data is durable.
    fs::write(root.join("lost"), b"lost").unwrap();
    // More data on a durable file, never synced.
    let mut f = OpenOptions::new()
        .append(true)
        .open(root.join("kept"))
        .unwrap();
    f.write_all(b"appended").unwrap();
    drop(f);
    // A child process that writes and ends, with no sync.
    let status = Command::new("sh")
        .arg("-c")
        .arg("echo x > child")
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fs::read(root.join("child")).unwrap(), b"x\n");
    assert_eq!(fs::metadata(root.join("kept")).unwrap().len(), 10_008);

    fs.cut().unwrap();

    assert!(!root.join("lost").exists());
    assert!(!root.join("child").exists());
    assert_eq!(fs::metadata(root.join("kept")).unwrap().len(), 10_000);
    assert_eq!(fs::read(root.join("kept")).unwrap(), kept);
    let names: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kept"]);
    let stats = fs.stats();
    assert_eq!(stats.file("/kept").fsync, 1);
    assert_eq!(stats.dir("/"), 1);
    assert_eq!(stats.cuts, 1);
}

#[test]
fn a_file_needs_its_directory_synced_and_the_directory_its_files() {
    let Some(mut fs) = PowerCutFs::for_test("a_file_needs_its_directory_synced") else {
        return;
    };
    let root = fs.path().to_path_buf();
    // Entry synced, data not: there, and empty.
    fs::write(root.join("entry-only"), b"data").unwrap();
    fs::create_dir(root.join("sub")).unwrap();
    fs::create_dir(root.join("sub/inner")).unwrap();
    sync_dir(&root);
    // Data synced, entry not: gone.
    write_synced(&root.join("data-only"), b"data");
    // Both synced, in a durable subdirectory: there.
    write_synced(&root.join("sub/both"), b"both");
    sync_dir(&root.join("sub"));
    // Both synced, in a subdirectory whose own entry is not: gone.
    fs::create_dir(root.join("sub2")).unwrap();
    write_synced(&root.join("sub2/both"), b"both");
    sync_dir(&root.join("sub2"));

    fs.cut().unwrap();

    assert_eq!(fs::metadata(root.join("entry-only")).unwrap().len(), 0);
    assert!(!root.join("data-only").exists());
    assert_eq!(fs::read(root.join("sub/both")).unwrap(), b"both");
    assert!(root.join("sub/inner").is_dir());
    assert_eq!(fs::metadata(root.join("sub")).unwrap().nlink(), 3);
    assert!(!root.join("sub2").exists());
}

#[test]
fn a_killed_child_keeps_what_it_synced() {
    let Some(mut fs) = PowerCutFs::for_test("a_killed_child_keeps_what_it_synced") else {
        return;
    };
    let root = fs.path().to_path_buf();
    let script = r#"
import os, sys, time
d = sys.argv[1]
fd = os.open(os.path.join(d, "secret"), os.O_CREAT | os.O_WRONLY, 0o600)
os.write(fd, b"synced")
os.fsync(fd)
with open(os.path.join(d, "unsynced"), "wb") as f:
    f.write(b"unsynced")
dfd = os.open(d, os.O_RDONLY)
os.fsync(dfd)
os.write(fd, b" and more")
with open(os.path.join(d, "late"), "wb") as f:
    f.write(b"late")
print("ready", flush=True)
time.sleep(600)
"#;
    let child = spawn_until_ready(&mut python(script, &[&root]));
    assert_eq!(fs::read(root.join("secret")).unwrap(), b"synced and more");
    kill(child);

    fs.cut().unwrap();

    assert_eq!(fs::read(root.join("secret")).unwrap(), b"synced");
    let mode = fs::metadata(root.join("secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o600);
    assert_eq!(fs::read(root.join("unsynced")).unwrap(), b"");
    assert!(!root.join("late").exists());
}

#[test]
fn a_rename_is_durable_with_its_directories_sync() {
    let Some(mut fs) = PowerCutFs::for_test("a_rename_is_durable_with_its_directory") else {
        return;
    };
    let root = fs.path().to_path_buf();
    write_synced(&root.join("a"), b"content");
    sync_dir(&root);

    fs::rename(root.join("a"), root.join("b")).unwrap();
    fs.cut().unwrap();
    assert_eq!(fs::read(root.join("a")).unwrap(), b"content");
    assert!(!root.join("b").exists());

    fs::rename(root.join("a"), root.join("b")).unwrap();
    sync_dir(&root);
    fs.cut().unwrap();
    assert!(!root.join("a").exists());
    assert_eq!(fs::read(root.join("b")).unwrap(), b"content");

    // Across directories each side is durable with its own directory: the
    // target's sync alone leaves the file under both names.
    fs::create_dir(root.join("x")).unwrap();
    fs::create_dir(root.join("y")).unwrap();
    sync_dir(&root);
    write_synced(&root.join("x/f"), b"f");
    sync_dir(&root.join("x"));
    fs::rename(root.join("x/f"), root.join("y/f")).unwrap();
    sync_dir(&root.join("y"));
    fs.cut().unwrap();
    assert_eq!(fs::read(root.join("x/f")).unwrap(), b"f");
    assert_eq!(fs::read(root.join("y/f")).unwrap(), b"f");
    assert_eq!(fs::metadata(root.join("y/f")).unwrap().nlink(), 2);

    fs::remove_file(root.join("x/f")).unwrap();
    sync_dir(&root.join("x"));
    fs.cut().unwrap();
    assert!(!root.join("x/f").exists());
    assert_eq!(fs::metadata(root.join("y/f")).unwrap().nlink(), 1);
}

#[test]
fn an_overwrite_by_rename_needs_the_directory_sync() {
    let Some(mut fs) = PowerCutFs::for_test("an_overwrite_by_rename_needs_the_directory_sync")
    else {
        return;
    };
    let root = fs.path().to_path_buf();
    write_synced(&root.join("conf"), b"old");
    sync_dir(&root);

    write_synced(&root.join("conf.tmp"), b"new");
    fs::rename(root.join("conf.tmp"), root.join("conf")).unwrap();
    sync_dir(&root);
    fs.cut().unwrap();
    assert_eq!(fs::read(root.join("conf")).unwrap(), b"new");
    assert!(!root.join("conf.tmp").exists());

    write_synced(&root.join("conf.tmp"), b"newer");
    fs::rename(root.join("conf.tmp"), root.join("conf")).unwrap();
    assert_eq!(fs::read(root.join("conf")).unwrap(), b"newer");
    fs.cut().unwrap();
    assert_eq!(fs::read(root.join("conf")).unwrap(), b"new");
    assert!(!root.join("conf.tmp").exists());
}

#[test]
fn rename_flags_links_and_modes() {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    let Some(mut fs) = PowerCutFs::for_test("rename_flags_links_and_modes") else {
        return;
    };
    let root = fs.path().to_path_buf();
    let (a, b, c) = (root.join("a"), root.join("b"), root.join("c"));
    fs::write(&a, b"a").unwrap();
    fs::write(&b, b"b").unwrap();
    let err = renameat_with(CWD, &a, CWD, &b, RenameFlags::NOREPLACE).unwrap_err();
    assert_eq!(err, rustix::io::Errno::EXIST);
    renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).unwrap();
    assert_eq!(fs::read(&a).unwrap(), b"b");
    assert_eq!(fs::read(&b).unwrap(), b"a");
    renameat_with(CWD, &a, CWD, &c, RenameFlags::NOREPLACE).unwrap();
    assert!(!a.exists());

    fs::hard_link(&c, &a).unwrap();
    assert_eq!(fs::metadata(&c).unwrap().nlink(), 2);
    std::os::unix::fs::symlink("c", root.join("l")).unwrap();
    assert_eq!(fs::read_link(root.join("l")).unwrap(), Path::new("c"));
    assert_eq!(fs::read(root.join("l")).unwrap(), b"b");

    let secret = root.join("secret");
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret)
        .unwrap();
    assert_eq!(f.metadata().unwrap().permissions().mode() & 0o7777, 0o600);
    f.sync_all().unwrap();
    drop(f);
    fs::set_permissions(&c, fs::Permissions::from_mode(0o640)).unwrap();
    File::open(&c).unwrap().sync_all().unwrap();
    fs::set_permissions(&c, fs::Permissions::from_mode(0o604)).unwrap();
    sync_dir(&root);

    fs.cut().unwrap();
    assert_eq!(fs::metadata(&secret).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(fs::metadata(&c).unwrap().mode() & 0o7777, 0o640);
    assert_eq!(fs::metadata(&c).unwrap().nlink(), 2);
    assert_eq!(fs::read_link(root.join("l")).unwrap(), Path::new("c"));
    let err = xattr_get(&c);
    assert_eq!(err, rustix::io::Errno::OPNOTSUPP);
}

fn xattr_get(path: &Path) -> rustix::io::Errno {
    let mut buf = [0u8; 64];
    rustix::fs::getxattr(path, "user.test", &mut buf).unwrap_err()
}

#[test]
fn truncates_fallocates_and_appends() {
    use rustix::fs::{FallocateFlags, fallocate};
    let Some(mut fs) = PowerCutFs::for_test("truncates_fallocates_and_appends") else {
        return;
    };
    let root = fs.path().to_path_buf();
    let path = root.join("f");
    let data = pattern(100, 3);
    write_synced(&path, &data);
    sync_dir(&root);
    let len = |p: &Path| fs::metadata(p).unwrap().len();

    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(10)
        .unwrap();
    assert_eq!(len(&path), 10);
    fs.cut().unwrap();
    assert_eq!(fs::read(&path).unwrap(), data);

    let f = File::options().write(true).open(&path).unwrap();
    f.set_len(10).unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs.cut().unwrap();
    assert_eq!(fs::read(&path).unwrap(), data[..10]);

    let f = File::options().write(true).open(&path).unwrap();
    f.set_len(1 << 20).unwrap();
    f.sync_data().unwrap();
    fallocate(&f, FallocateFlags::empty(), 0, 2 << 20).unwrap();
    assert_eq!(len(&path), 2 << 20);
    fallocate(&f, FallocateFlags::KEEP_SIZE, 0, 4 << 20).unwrap();
    assert_eq!(len(&path), 2 << 20);
    let err = fallocate(
        &f,
        FallocateFlags::KEEP_SIZE | FallocateFlags::PUNCH_HOLE,
        0,
        10,
    );
    assert_eq!(err, Err(rustix::io::Errno::OPNOTSUPP));
    drop(f);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"xy").unwrap();
    f.write_all(b"zw").unwrap();
    drop(f);
    assert_eq!(len(&path), (2 << 20) + 4);
    fs.cut().unwrap();
    let content = fs::read(&path).unwrap();
    assert_eq!(content.len(), 1 << 20);
    assert_eq!(content[..10], data[..10]);
    assert!(content[10..].iter().all(|&b| b == 0));
}

#[test]
fn random_pwrites_keep_exactly_the_synced_image() {
    let Some(mut fs) = PowerCutFs::for_test("random_pwrites_keep_exactly_the_synced_image") else {
        return;
    };
    let root = fs.path().to_path_buf();
    let path = root.join("big");
    const SIZE: usize = 2 << 20;
    let f = File::create(&path).unwrap();
    f.set_len(SIZE as u64).unwrap();
    sync_dir(&root);
    let mut model = vec![0u8; SIZE];
    let mut rng = SplitMix64(42);
    let mut scribble = |f: &File, model: &mut Vec<u8>, n: usize| {
        for _ in 0..n {
            let len = 1 + rng.below(8192);
            let offset = rng.below(SIZE - len);
            let byte = rng.below(256) as u8;
            let buf = vec![byte; len];
            f.write_all_at(&buf, offset as u64).unwrap();
            model[offset..offset + len].copy_from_slice(&buf);
        }
    };
    scribble(&f, &mut model, 300);
    assert!(fs::read(&path).unwrap() == model);
    f.sync_data().unwrap();
    let synced = model.clone();
    scribble(&f, &mut model, 300);
    f.set_len(SIZE as u64 + 12_345).unwrap();
    model.resize(SIZE + 12_345, 0);
    let mut read_back = Vec::new();
    File::open(&path)
        .unwrap()
        .read_to_end(&mut read_back)
        .unwrap();
    assert!(read_back == model);
    drop(f);

    fs.cut().unwrap();
    let after = fs::read(&path).unwrap();
    assert_eq!(after.len(), SIZE);
    assert!(after == synced, "the file is not the image synced");
    let stats = fs.stats().file("/big");
    assert_eq!((stats.fsync, stats.fdatasync), (0, 1));
    assert!(stats.writes >= 600, "{stats:?}");
}

/// Eight 4 KiB writes, each of its own byte, on each of two synced files of
/// 32 KiB of zeros, then a torn cut of `t.dat` only; returns the report and
/// the contents of both after it.
fn torn_run(fs: &mut PowerCutFs, seed: u64) -> (Vec<TornFile>, Vec<u8>, Vec<u8>) {
    let root = fs.path().to_path_buf();
    for name in ["t.dat", "u.dat"] {
        write_synced(&root.join(name), &[0; 8 * 4096]);
    }
    sync_dir(&root);
    for name in ["t.dat", "u.dat"] {
        let f = File::options().write(true).open(root.join(name)).unwrap();
        for i in 0..8u8 {
            f.write_all_at(&[i + 1; 4096], u64::from(i) * 4096).unwrap();
        }
    }
    let torn = fs.cut_torn_file("t.dat", seed).unwrap();
    (
        torn,
        fs::read(root.join("t.dat")).unwrap(),
        fs::read(root.join("u.dat")).unwrap(),
    )
}

#[test]
fn a_torn_cut_keeps_a_prefix_of_the_pending_writes() {
    let Some(mut fs) = PowerCutFs::for_test("a_torn_cut_keeps_a_prefix_of_the_pending_writes")
    else {
        return;
    };
    let mut torn_midway = false;
    for seed in 0..50 {
        let (torn, t, u) = torn_run(&mut fs, seed);
        assert_eq!(torn.len(), 1, "{torn:?}");
        let report = &torn[0];
        assert_eq!((report.path.as_str(), report.pending), ("/t.dat", 8));
        let partial = report.partial.map_or(0, |(part, len)| {
            assert_eq!(len, 4096);
            part
        });
        assert!(report.kept < 8 || report.partial.is_none());
        let mut expected = vec![0u8; 8 * 4096];
        for i in 0..report.kept {
            expected[i * 4096..(i + 1) * 4096].fill(i as u8 + 1);
        }
        let start = report.kept * 4096;
        expected[start..start + partial].fill(report.kept as u8 + 1);
        assert!(t == expected, "seed {seed}: {report:?}");
        assert!(u.iter().all(|&b| b == 0), "seed {seed}: u.dat kept a write");
        // The same seed, the same cut.
        let (again, t_again, _) = torn_run(&mut fs, seed);
        assert_eq!(again, torn);
        assert!(t_again == t);
        torn_midway |= report.kept > 0 && partial > 0 && partial < 4096;
        if torn_midway && seed >= 3 {
            break;
        }
    }
    assert!(torn_midway, "no seed tore a write in the middle");

    // All files.
    let root = fs.path().to_path_buf();
    let f = File::options()
        .write(true)
        .open(root.join("u.dat"))
        .unwrap();
    f.write_all_at(&[9; 100], 0).unwrap();
    drop(f);
    let torn = fs.cut_torn(1).unwrap();
    assert_eq!(torn.len(), 1);
    assert_eq!(torn[0].path, "/u.dat");
}

#[test]
fn sled_works_on_the_mount_and_after_a_cut() {
    let Some(mut fs) = PowerCutFs::for_test("sled_works_on_the_mount_and_after_a_cut") else {
        return;
    };
    let db_path = fs.path().join("db");
    let db = sled::Config::new().path(&db_path).open().unwrap();
    for i in 0..100u32 {
        db.insert(i.to_be_bytes(), &b"flushed"[..]).unwrap();
    }
    db.flush().unwrap();
    for i in 100..200u32 {
        db.insert(i.to_be_bytes(), &b"not flushed"[..]).unwrap();
    }
    // sled's lock: a second open of the same database fails while it is open.
    assert!(sled::Config::new().path(&db_path).open().is_err());
    drop(db);
    let stats = fs.stats();
    eprintln!(
        "sled, one flush: {:?}; directory syncs {:?}",
        stats.files, stats.dirs
    );

    fs.cut().unwrap();
    let db = sled::Config::new().path(&db_path).open().unwrap();
    eprintln!("sled after a cut: {} keys of 200", db.len());
    db.insert(b"after", &b"the cut"[..]).unwrap();
    db.flush().unwrap();
    drop(db);

    // Its files and directory durable first, then one flush: what the
    // counters and the cut show is printed, not judged here.
    fs.persist_all();
    let before = fs.stats();
    let db = sled::Config::new().path(&db_path).open().unwrap();
    for i in 0..100u32 {
        db.insert(i.to_be_bytes(), &b"flushed"[..]).unwrap();
    }
    db.flush().unwrap();
    drop(db);
    let after = fs.stats();
    fs.cut().unwrap();
    let db = sled::Config::new().path(&db_path).open().unwrap();
    eprintln!(
        "sled on durable files, one flush: fsync {} -> {}, fdatasync {} -> {}; \
         after a cut {} keys of the 100 flushed",
        before.fsync,
        after.fsync,
        before.fdatasync,
        after.fdatasync,
        (0..100u32)
            .filter(|i| db.get(i.to_be_bytes()).unwrap().is_some())
            .count()
    );
    drop(db);

    // With everything made durable (a perfect sync), sled reads back its
    // database from the remounted file system.
    let db = sled::Config::new().path(&db_path).open().unwrap();
    for i in 0..50u32 {
        db.insert(format!("k{i}"), &[7u8; 100][..]).unwrap();
    }
    db.flush().unwrap();
    drop(db);
    fs.persist_all();
    fs.cut().unwrap();
    let db = sled::Config::new().path(&db_path).open().unwrap();
    for i in 0..50u32 {
        assert_eq!(db.get(format!("k{i}")).unwrap().unwrap(), [7u8; 100][..]);
    }
    assert_eq!(db.get(b"after").unwrap().unwrap(), b"the cut"[..]);
    drop(db);

    // A durable directory made by the application (as the daemon's state
    // directory is), sled's files new in it: printed, not judged here.
    let fresh = fs.path().join("fresh");
    fs::create_dir(&fresh).unwrap();
    sync_dir(fs.path());
    sync_dir(&fresh);
    let db = sled::Config::new().path(fresh.join("db")).open().unwrap();
    db.insert(b"k", &b"v"[..]).unwrap();
    db.flush().unwrap();
    drop(db);
    fs.cut().unwrap();
    let reopened = sled::Config::new().path(fresh.join("db")).open();
    eprintln!(
        "sled in a new durable directory, one flush, cut: open {:?}, key {:?}",
        reopened.as_ref().map(|_| ()),
        reopened.as_ref().ok().map(|db| db.get(b"k").unwrap())
    );
    drop(reopened);
}

#[test]
fn flock_and_fcntl_locks_work_on_the_mount() {
    use rustix::fs::{FlockOperation, flock};
    let Some(fs) = PowerCutFs::for_test("flock_and_fcntl_locks_work_on_the_mount") else {
        return;
    };
    let path = fs.path().join("lock");
    let a = File::create(&path).unwrap();
    let b = File::open(&path).unwrap();
    flock(&a, FlockOperation::NonBlockingLockExclusive).unwrap();
    assert_eq!(
        flock(&b, FlockOperation::NonBlockingLockShared),
        Err(rustix::io::Errno::WOULDBLOCK)
    );
    flock(&a, FlockOperation::Unlock).unwrap();
    flock(&b, FlockOperation::NonBlockingLockShared).unwrap();
    // An fcntl lock held by a child blocks this process's.
    let script = r#"
import fcntl, sys, time
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("ready", flush=True)
time.sleep(600)
"#;
    let child = spawn_until_ready(&mut python(script, &[&path]));
    let c = File::options().write(true).open(&path).unwrap();
    assert!(fcntl_try_lock(&c).is_err());
    kill(child);
    fcntl_try_lock(&c).unwrap();
}

/// An exclusive fcntl lock of the whole file, without waiting.
fn fcntl_try_lock(f: &File) -> rustix::io::Result<()> {
    rustix::fs::fcntl_lock(f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
}

#[test]
fn sqlite_wal_commits_survive_a_kill_and_a_cut() {
    let Some(mut fs) = PowerCutFs::for_test("sqlite_wal_commits_survive_a_kill_and_a_cut") else {
        return;
    };
    let db = fs.path().join("t.db");
    let script = r#"
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
assert c.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
c.execute("PRAGMA synchronous=FULL")
c.execute("CREATE TABLE t(x INTEGER PRIMARY KEY, v TEXT)")
for i in range(100):
    c.execute("INSERT INTO t VALUES (?, ?)", (i, "v" * 100))
c.execute("BEGIN")
c.execute("INSERT INTO t VALUES (1000, 'uncommitted')")
print("ready", flush=True)
time.sleep(600)
"#;
    let child = spawn_until_ready(&mut python(script, &[&db]));
    kill(child);
    let stats = fs.stats();
    eprintln!(
        "sqlite: {:?}; directory syncs {:?}",
        stats.files, stats.dirs
    );
    fs.cut().unwrap();
    let out = python(
        r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute("PRAGMA integrity_check").fetchone()[0])
print(c.execute("SELECT count(*), max(x) FROM t").fetchone())
"#,
        &[&db],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n(100, 99)\n");
}

#[test]
fn o_sync_writes_are_durable_syncfs_is_not() {
    let Some(mut fs) = PowerCutFs::for_test("o_sync_writes_are_durable_syncfs_is_not") else {
        return;
    };
    let root = fs.path().to_path_buf();
    fs::write(root.join("o_sync"), b"").unwrap();
    fs::write(root.join("plain"), b"").unwrap();
    sync_dir(&root);
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::SYNC.bits() as i32)
        .open(root.join("o_sync"))
        .unwrap();
    f.write_all(b"synced").unwrap();
    drop(f);
    fs::write(root.join("plain"), b"unsynced").unwrap();
    let dir = File::open(&root).unwrap();
    rustix::fs::syncfs(&dir).unwrap();
    drop(dir);
    assert!(fs.stats().file("/o_sync").syncs() >= 1);

    fs.cut().unwrap();
    assert_eq!(fs::read(root.join("o_sync")).unwrap(), b"synced");
    assert_eq!(fs::read(root.join("plain")).unwrap(), b"");
}
