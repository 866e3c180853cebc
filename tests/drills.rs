//! Outage drills against the real binary: the store's disk fills up while
//! records keep coming (and its filesystem is read-only when the daemon
//! starts: the daemon waits for it). Intake pauses with an error in the log and
//! `trailwarden_store_stalled` at 1, nothing is checkpointed, and once space
//! returns the daemon goes on by itself and ends with the alarms of a run
//! that never saw the outage.
//!
//! The store lives on a small tmpfs the test mounts (the test suite runs as
//! root, as `scripts/test` does in CI).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::kafka::alarm_fingerprint;
use common::*;

const TOKEN: &str = "tw_test_drill_viewer_token_0123456789abcdef0123";

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    /// `None` only where mounting is not permitted at all (a container
    /// without CAP_SYS_ADMIN): the drill then says it was skipped. Any
    /// other failure fails the test.
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        let said = String::from_utf8_lossy(&output.stderr).to_lowercase();
        if !output.status.success()
            && ["permission denied", "not permitted", "must be superuser", "only root"]
                .iter()
                .any(|refusal| said.contains(refusal))
        {
            eprintln!(
                "SKIPPED: the full-disk drill cannot mount a tmpfs here ({}); run it as root",
                said.trim()
            );
            return None;
        }
        assert!(
            output.status.success(),
            "mounting a {size} tmpfs at {} failed: {said}",
            dir.display()
        );
        Some(SmallDisk { dir: dir.to_path_buf() })
    }

    /// Remount it read-only (`ro`) or writable (`rw`). Linux refuses a
    /// read-only remount while a process has files open for writing on it.
    fn remount(&self, mode: &str) {
        let output = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.dir)
            .output()
            .expect("mount runs");
        assert!(
            output.status.success(),
            "remount {mode} of {}: {}",
            self.dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Fill what is left with a file; returns it.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 << 10];
        while file.write_all(&block).is_ok() {}
        let _ = file.flush();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// tests/support/flipfs.py mounted for the test: a pass-through FUSE
/// filesystem that answers every write with EROFS while told to, as a
/// filesystem the kernel remounted read-only would (a real one cannot be
/// remounted read-only while the daemon has files open for writing).
/// Unmounted when dropped.
struct FlipFs {
    dir: PathBuf,
    control: PathBuf,
    child: std::process::Child,
}

impl FlipFs {
    fn mount(backing: &Path, dir: &Path, control: &Path) -> FlipFs {
        let python = std::env::var("TW_FLIPFS_PYTHON").unwrap_or_else(|_| {
            let cache = std::env::var("XDG_CACHE_HOME")
                .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
            format!("{cache}/trailwarden-test/flipfs/bin/python")
        });
        let mut child = Command::new(&python)
            .arg(repo().join("tests/support/flipfs.py"))
            .args([backing, dir, control])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("{python} runs tests/support/flipfs.py (scripts/test installs mfusepy): {error}")
            });
        let mut said = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut said).unwrap();
        assert_eq!(
            said.trim(),
            "ready",
            "flipfs did not mount {} (as root, with /dev/fuse and mfusepy; scripts/test installs it)",
            dir.display()
        );
        FlipFs {
            dir: dir.to_path_buf(),
            control: control.to_path_buf(),
            child,
        }
    }

    fn read_only(&self, on: bool) {
        if on {
            std::fs::write(&self.control, b"").unwrap();
        } else {
            std::fs::remove_file(&self.control).unwrap();
        }
    }
}

impl Drop for FlipFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The alarms in `store` are what a replay of `files` into a fresh store raises.
fn assert_alarms_of_a_replay(sandbox: &Sandbox, store: &Path, files: &[&Path]) {
    let reference = sandbox.path("reference.db");
    let mut args = vec!["replay", "--format", "jsonl", "--db", reference.to_str().unwrap()];
    args.extend(files.iter().map(|file| file.to_str().unwrap()));
    sandbox.ok(&args);
    assert_eq!(alarm_fingerprint(store), alarm_fingerprint(&reference));
}

fn completed(db: &Path, file: &Path) -> bool {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|connection| {
            connection.query_row(
                "SELECT count(*) FROM source_files WHERE path = ?1 AND completed = 1",
                [file.to_str().unwrap()],
                |row| row.get::<_, i64>(0),
            )
        })
        .is_ok_and(|count| count == 1)
}

#[test]
fn a_full_disk_pauses_intake_and_it_resumes_by_itself_when_space_returns() {
    let sandbox = Sandbox::named("unused.db", "drill.toml").with_bin(Trailwarden::api_on_any_port);
    let Some(disk) = SmallDisk::mount(&sandbox.path("small"), "24m") else {
        return;
    };
    let store = disk.dir.join("store.db");
    stall_drill(
        &sandbox,
        &store,
        || {
            disk.fill();
        },
        || std::fs::remove_file(disk.dir.join("filler")).unwrap(),
    );
}

#[test]
fn a_filesystem_turning_read_only_under_the_daemon_pauses_intake_until_it_takes_writes_again() {
    let sandbox = Sandbox::named("unused.db", "drill.toml").with_bin(Trailwarden::api_on_any_port);
    let volume = FlipFs::mount(
        &sandbox.path("backing"),
        &sandbox.path("volume"),
        &sandbox.path("read-only"),
    );
    let store = volume.dir.join("store.db");
    stall_drill(&sandbox, &store, || volume.read_only(true), || volume.read_only(false));
}

/// The course of a drill where the store's filesystem stops taking writes
/// mid-stream: a first corpus is read, `fault` breaks the filesystem and a
/// second corpus arrives. Intake pauses (the log says so, the stall metric is
/// 1, nothing of the second corpus is checkpointed, the daemon keeps
/// running); after `mend` it goes on by itself and ends with the alarms of a
/// replay that never saw the fault, its chain verified.
fn stall_drill(sandbox: &Sandbox, store: &Path, fault: impl FnOnce(), mend: impl FnOnce()) {
    let watch = sandbox.path("watch");
    std::fs::create_dir_all(&watch).unwrap();
    let hash = hex::encode(trailwarden::api::auth::hash_token(TOKEN));
    sandbox.write_config(
        &Config::standard(store)
            .files(&[&watch])
            .set("source.files", "poll_interval", "100ms")
            .set("source.files", "settle", "0s")
            .set("store.backup", "dir", "")
            .set("log", "level", "info")
            .append(&format!(
                "[[api.tokens]]\nname = \"vera\"\nrole = \"viewer\"\nsha256 = \"{hash}\"\n"
            )),
    );
    // Two corpora, generated outside the watched directory and moved in.
    let first = watch.join("first.jsonl");
    let second = watch.join("second.jsonl");
    // The second starts after the first ends, so arriving later is its event-time order too.
    for (path, seed, start) in [(&first, "1", "2026-03-02"), (&second, "2", "2026-03-04")] {
        let staged = sandbox.path(&format!("staged-{seed}.jsonl"));
        sandbox.stdout(&[
            "generate",
            "--events",
            "6000",
            "--seed",
            seed,
            "--start",
            start,
            "--days",
            "1",
            "--out",
            staged.to_str().unwrap(),
        ]);
        if seed == "1" {
            std::fs::rename(&staged, path).unwrap();
        }
    }
    let mut daemon = sandbox.start(&["run"], Log::Collect);
    let printed = daemon.read_lines_until(Duration::from_secs(60), |line| line.starts_with("console: http://"));
    let address = printed
        .lines()
        .find_map(|line| line.strip_prefix("console: http://"))
        .map(|url| url.trim_end_matches('/').to_string())
        .unwrap_or_else(|| panic!("no console URL printed: {}", daemon.stderr()));
    let http = Http::new(address, Duration::from_secs(30));
    let stalled = || {
        let metrics = http.get("/metrics", Some(TOKEN)).expect("/metrics answers").body;
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("trailwarden_store_stalled "))
            .map(|value| value.trim() == "1")
            .unwrap_or_else(|| panic!("no trailwarden_store_stalled in {metrics}"))
    };
    wait_until("the first corpus", Duration::from_secs(120), || {
        completed(store, &first)
    });
    assert!(!stalled());
    // The filesystem stops taking writes; the second corpus arrives.
    fault();
    std::fs::rename(sandbox.path("staged-2.jsonl"), &second).unwrap();
    wait_until(
        "the store to report it cannot be written",
        Duration::from_secs(120),
        || daemon.stderr().contains("the store cannot be written"),
    );
    wait_until("the stall to show in /metrics", Duration::from_secs(30), stalled);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !completed(store, &second),
        "nothing of the second corpus is checkpointed while the store cannot be written"
    );
    assert!(
        daemon.exited().is_none(),
        "the daemon waits, it does not stop: {}",
        daemon.stderr()
    );
    // Writes are taken again: it goes on by itself.
    mend();
    wait_until("the second corpus after the outage", Duration::from_secs(120), || {
        completed(store, &second)
    });
    assert!(!stalled());
    assert!(
        daemon.stderr().contains("the store is writable again"),
        "{}",
        daemon.stderr()
    );
    assert!(daemon.terminate());
    assert!(daemon.wait().success(), "{}", daemon.stderr());
    // The same alarms as a replay of both corpora that never saw the outage.
    assert_alarms_of_a_replay(sandbox, store, &[&first, &second]);
    let verify = sandbox.run(&["store", "verify", "--db", store.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}

/// A daemon on `watch`, its store at `store`, logging at info; returns it
/// once its rules are loaded.
fn watching(sandbox: &Sandbox, store: &Path, watch: &Path, rules: Option<&Path>) -> Daemon {
    let mut config = Config::standard(store)
        .files(&[watch])
        .set("source.files", "poll_interval", "100ms")
        .set("source.files", "settle", "0s")
        .set("store.backup", "dir", "")
        .set("log", "level", "info");
    if let Some(rules) = rules {
        config = config.set("rules", "dir", rules);
    }
    sandbox.write_config(&config);
    let daemon = sandbox.start(&["run"], Log::Collect);
    wait_until("the daemon to start", Duration::from_secs(60), || {
        daemon.stderr().contains("alarm store open")
    });
    daemon
}

/// A corpus of `events` generated records starting at `start`, staged in
/// the sandbox (outside the watched directory).
fn corpus(sandbox: &Sandbox, name: &str, seed: &str, start: &str, events: &str) -> PathBuf {
    if !sandbox.config.exists() {
        sandbox.write_config(&Config::standard(&sandbox.store));
    }
    let path = sandbox.path(name);
    sandbox.stdout(&[
        "generate",
        "--events",
        events,
        "--seed",
        seed,
        "--start",
        start,
        "--days",
        "1",
        "--out",
        path.to_str().unwrap(),
    ]);
    path
}

#[test]
fn a_store_on_a_read_only_filesystem_waits_at_start_and_goes_on_once_it_takes_writes() {
    let sandbox = Sandbox::named("unused.db", "drill.toml").with_bin(Trailwarden::api_on_any_port);
    let Some(disk) = SmallDisk::mount(&sandbox.path("volume"), "64m") else {
        return;
    };
    let store = disk.dir.join("store.db");
    let watch = sandbox.path("watch");
    std::fs::create_dir_all(&watch).unwrap();
    let first = corpus(&sandbox, "first.jsonl", "5", "2026-03-02", "3000");
    let second = corpus(&sandbox, "second.jsonl", "6", "2026-03-04", "3000");
    let config = Config::standard(&store)
        .files(&[&watch])
        .set("source.files", "poll_interval", "100ms")
        .set("source.files", "settle", "0s")
        .set("store.backup", "dir", "")
        .set("log", "level", "info");
    sandbox.write_config(&config);
    // The first corpus goes into the store while the volume is writable.
    let first_in = watch.join("first.jsonl");
    std::fs::rename(&first, &first_in).unwrap();
    sandbox.ok(&["run", "--once"]);
    assert!(completed(&store, &first_in));

    // The volume comes back read-only (as after the kernel remounted it on an
    // error); the second corpus is waiting to be read.
    disk.remount("ro");
    let second_in = watch.join("second.jsonl");
    std::fs::rename(&second, &second_in).unwrap();
    let once = sandbox.run(&["run", "--once"]);
    assert!(!once.status.success(), "a one-shot run does not wait");
    assert!(
        stderr(&once).contains("its filesystem is read-only"),
        "and says why: {}",
        stderr(&once)
    );
    let mut daemon = sandbox.start(&["run"], Log::Collect);
    wait_until(
        "the daemon to report the read-only store",
        Duration::from_secs(60),
        || daemon.stderr().contains("the store's filesystem is read-only"),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        daemon.exited().is_none(),
        "it waits, it does not stop: {}",
        daemon.stderr()
    );
    assert!(
        !daemon.stderr().contains("alarm store open"),
        "nothing starts before the store can be written"
    );
    // Writable again: it starts by itself and reads the second corpus.
    disk.remount("rw");
    wait_until("the second corpus once writable", Duration::from_secs(120), || {
        completed(&store, &second_in)
    });
    assert!(
        daemon
            .stderr()
            .contains("the store's filesystem is writable again; starting"),
        "{}",
        daemon.stderr()
    );
    assert!(daemon.terminate());
    assert!(daemon.wait().success(), "{}", daemon.stderr());
    assert_alarms_of_a_replay(&sandbox, &store, &[&first_in, &second_in]);
}

#[test]
fn another_process_holding_the_stores_lock_pauses_intake_until_it_lets_go() {
    let sandbox = Sandbox::named("store.db", "drill.toml").with_bin(Trailwarden::api_on_any_port);
    let watch = sandbox.path("watch");
    std::fs::create_dir_all(&watch).unwrap();
    let staged = corpus(&sandbox, "staged.jsonl", "3", "2026-03-02", "3000");
    let mut daemon = watching(&sandbox, &sandbox.store, &watch, None);
    // Another process takes SQLite's write lock and keeps it 15 s, longer
    // than the store's 10 s busy timeout.
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('locked', flush=True)\n\
             time.sleep(15)\n\
             c.execute('COMMIT')\n",
            sandbox.store_arg(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut said = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()), &mut said).unwrap();
    assert_eq!(said.trim(), "locked");
    let arrived = watch.join("arrived.jsonl");
    std::fs::rename(&staged, &arrived).unwrap();
    wait_until("the store to report the lock", Duration::from_secs(60), || {
        daemon.stderr().contains("the store cannot be written")
    });
    assert!(
        !completed(&sandbox.store, &arrived),
        "nothing is checkpointed behind the lock"
    );
    assert!(holder.wait().unwrap().success());
    wait_until("the corpus once the lock is released", Duration::from_secs(60), || {
        completed(&sandbox.store, &arrived)
    });
    assert!(
        daemon.stderr().contains("the store is writable again"),
        "{}",
        daemon.stderr()
    );
    assert!(daemon.terminate());
    assert!(daemon.wait().success(), "{}", daemon.stderr());
    assert_alarms_of_a_replay(&sandbox, &sandbox.store, &[&arrived]);
}

#[test]
fn the_rules_directory_removed_while_running_keeps_the_running_rules_until_it_is_back() {
    let sandbox = Sandbox::named("store.db", "drill.toml").with_bin(Trailwarden::api_on_any_port);
    let watch = sandbox.path("watch");
    std::fs::create_dir_all(&watch).unwrap();
    let rules = sandbox.path("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for entry in std::fs::read_dir(rules_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), rules.join(entry.file_name())).unwrap();
    }
    let staged = corpus(&sandbox, "staged.jsonl", "4", "2026-03-02", "3000");
    let mut daemon = watching(&sandbox, &sandbox.store, &watch, Some(&rules));
    std::fs::remove_dir_all(&rules).unwrap();
    assert!(daemon.hangup());
    wait_until("the failed reload", Duration::from_secs(60), || {
        daemon
            .stderr()
            .contains("rule reload failed; the running rules stay in place")
    });
    assert!(
        daemon.stderr().contains("cannot read rules directory"),
        "{}",
        daemon.stderr()
    );
    // The running rules still raise alarms.
    let arrived = watch.join("arrived.jsonl");
    std::fs::rename(&staged, &arrived).unwrap();
    wait_until(
        "the corpus, evaluated by the running rules",
        Duration::from_secs(120),
        || completed(&sandbox.store, &arrived),
    );
    // Back: the next reload finds the same rules.
    std::fs::create_dir_all(&rules).unwrap();
    for entry in std::fs::read_dir(rules_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), rules.join(entry.file_name())).unwrap();
    }
    assert!(daemon.hangup());
    wait_until("the reload with the directory back", Duration::from_secs(60), || {
        daemon.stderr().contains("rules unchanged")
    });
    assert!(daemon.terminate());
    assert!(daemon.wait().success(), "{}", daemon.stderr());
    // What the running rules raised meanwhile is what they raise in a replay.
    assert_alarms_of_a_replay(&sandbox, &sandbox.store, &[&arrived]);
}

/// A store as version 7 wrote it (before the evidence migration), with
/// `alarms` alarms, each with a call record and a sample.
fn version_7_store(path: &Path, alarms: usize) {
    use trailwarden::alarm::chain::{self, LinkKind};
    use trailwarden::alarm::schema::MIGRATIONS;
    let mut connection = rusqlite::Connection::open(path).unwrap();
    for (index, sql) in MIGRATIONS[..7].iter().enumerate() {
        connection.execute_batch(sql).unwrap();
        connection
            .pragma_update(None, "user_version", (index + 1) as i64)
            .unwrap();
    }
    let transaction = connection.transaction().unwrap();
    for id in 1..=alarms as i64 {
        transaction
            .execute(
                "INSERT INTO alarms (id, rule_id, rule_hash, level, title, group_key, provider, account_identity, \
                 principal_kind, first_seen, last_seen, count, sample_count, last_output, created_at, updated_at) \
                 VALUES (?1, 'r', 'h', 'high', 't', ?2, 'aws', 'root', 'root', 'a', 'b', 2, 1, 'o', 'c', 'u')",
                rusqlite::params![id, format!("group-{id}")],
            )
            .unwrap();
        transaction
            .execute(
                "INSERT INTO alarm_calls VALUES (?1, '203.0.113.7', 'public', 'api', 'iam', 'CreateUser', 2, 0, 'a', 'b')",
                [id],
            )
            .unwrap();
        transaction
            .execute(
                "INSERT INTO alarm_samples VALUES (?1, 0, ?2, 'a', 'f:1', ?3)",
                rusqlite::params![id, format!("e{id}"), format!("{{\"x\":\"{}\"}}", "y".repeat(400))],
            )
            .unwrap();
    }
    chain::seal_existing(&transaction, &LinkKind::FIRST, "c").unwrap();
    transaction.commit().unwrap();
}

/// Start `trailwarden ARGS`, kill it with SIGKILL after `after`; whether it
/// had finished by then.
fn killed_after(sandbox: &Sandbox, args: &[&str], after: Duration) -> bool {
    let mut child = sandbox
        .command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    finished
}

#[test]
fn sigkill_during_a_migration_leaves_a_store_the_next_open_finishes() {
    let sandbox = Sandbox::named("old.db", "drill.toml").with_bin(Trailwarden::api_on_any_port);
    sandbox.write_config(&Config::standard(&sandbox.store));
    version_7_store(&sandbox.store, 20_000);
    // Kill `store verify` (which migrates first) sooner, then later, until
    // one run gets through; each kill lands somewhere in the migration.
    let mut kills = 0;
    for millis in [30, 80, 150, 300, 600, 1_200, 2_500, 5_000, 10_000, 20_000] {
        if killed_after(&sandbox, &["store", "verify"], Duration::from_millis(millis)) {
            break;
        }
        kills += 1;
    }
    assert!(kills > 0, "the migration was never interrupted");
    let verify = sandbox.run(&["store", "verify"]);
    assert!(verify.status.success(), "{}{}", stdout(&verify), stderr(&verify));
    assert!(
        stdout(&verify).contains("20000 alarms") && stdout(&verify).contains("20000 call records"),
        "{}",
        stdout(&verify)
    );
    eprintln!("the migration was killed {kills} times before one finished");
}

/// Alarms in a store file, read without migrating or creating anything.
fn alarms(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|connection| connection.query_row("SELECT count(*) FROM alarms", [], |row| row.get(0)))
        .unwrap_or(-1)
}

#[test]
fn sigkill_during_a_backup_never_leaves_a_backup_that_is_not_whole() {
    let sandbox = Sandbox::named("store.db", "drill.toml").with_bin(Trailwarden::api_on_any_port);
    sandbox.write_config(&Config::standard(&sandbox.store));
    let corpus = corpus(&sandbox, "corpus.jsonl", "5", "2026-03-02", "20000");
    sandbox.ok(&[
        "replay",
        "--format",
        "jsonl",
        "--db",
        sandbox.store_arg(),
        corpus.to_str().unwrap(),
    ]);
    let mut cut = 0;
    for (round, millis) in [1u64, 5, 10, 20, 40, 80, 160].into_iter().enumerate() {
        let target = sandbox.path(&format!("backup-{round}.db"));
        if !killed_after(
            &sandbox,
            &["store", "backup", target.to_str().unwrap()],
            Duration::from_millis(millis),
        ) {
            cut += 1;
        }
        // Either a whole backup under its name, or nothing under it.
        if target.exists() {
            assert_eq!(
                alarms(&target),
                alarms(&sandbox.store),
                "round {round}: a backup with alarms missing"
            );
            let verify = sandbox.run(&["store", "verify", "--db", target.to_str().unwrap()]);
            assert!(verify.status.success(), "round {round}: {}", stdout(&verify));
        }
    }
    assert!(cut > 0, "no backup was interrupted");
    let verify = sandbox.run(&["store", "verify"]);
    assert!(
        verify.status.success(),
        "the store itself is untouched: {}",
        stdout(&verify)
    );
}
