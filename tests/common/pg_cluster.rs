//! A throw-away PostgreSQL cluster for the shared-store tests: `initdb` in a
//! temporary directory, `pg_ctl` on a free loopback port, trust
//! authentication, stopped (immediately) when dropped. Never a system
//! service.
//!
//! The binaries come from `TW_PG_BIN` (set by `scripts/test`), else the
//! newest `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package).
//! `initdb` refuses to run as root: as root, the cluster is created and run
//! as the `postgres` user on a directory that user owns.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct Postgres {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
    /// `fsync` on (a benchmark's durable server) or off (tests).
    fsync: bool,
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TW_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (Debian's `postgresql` package; scripts/test installs it)")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions.pop().expect("no /usr/lib/postgresql/*/bin").1
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    /// A new, running cluster; without fsync (tests that kill it need no
    /// durability beyond the server process, and run faster).
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// A new, running cluster with PostgreSQL's durable defaults (fsync on),
    /// as a deployment runs it: for benchmarks.
    pub fn start_durable() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(fsync: bool) -> Postgres {
        let bin = bin_dir();
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("tw-pg").tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if as_postgres {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data)
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster directory to postgres");
        }
        let cluster = Postgres {
            _dir: dir,
            data,
            bin,
            port: crate::common::free_port(),
            as_postgres,
            fsync,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        cluster.start_server();
        cluster
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let output = if self.as_postgres {
            let mut line = shell_quote(&program.display().to_string());
            for arg in args {
                line.push(' ');
                line.push_str(&shell_quote(arg));
            }
            Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", &line])
                .output()
        } else {
            Command::new(&program).args(args).output()
        }
        .unwrap_or_else(|error| panic!("running {}: {error}", program.display()));
        assert!(
            output.status.success(),
            "{} {:?} failed: {}{}",
            program.display(),
            args,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync={} \
             -c max_connections=60",
            self.port,
            self.data.display(),
            if self.fsync { "on" } else { "off" }
        );
        let log = self.data.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stop at once (no shutdown checkpoint: like a crash) and start again.
    pub fn restart_immediately(&self) {
        self.stop_immediately();
        self.start_server();
    }

    pub fn stop_immediately(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data.display().to_string(), "-m", "immediate", "-w", "stop"],
        );
    }

    pub fn start_again(&self) {
        self.start_server();
    }

    /// A URL for database `name` (created on first use).
    pub fn database(&self, name: &str) -> String {
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test cluster");
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .unwrap()
            .is_some();
        if !exists {
            client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).unwrap();
        }
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Run SQL on a database and return the rows' first columns as text.
    pub fn query_texts(&self, url: &str, sql: &str) -> Vec<String> {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client
            .simple_query(sql)
            .unwrap()
            .into_iter()
            .filter_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("").to_string()),
                _ => None,
            })
            .collect()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

/// Messages a PostgreSQL store has marked consumed for `group` (the sum of
/// its stored next offsets; 0 while the server cannot be reached).
pub fn kafka_progress(url: &str, group: &str) -> i64 {
    let Ok(mut client) = postgres::Client::connect(url, postgres::NoTls) else {
        return 0;
    };
    client
        .query_one(
            "SELECT COALESCE(SUM(next_offset), 0)::bigint FROM kafka_offsets WHERE group_id = $1",
            &[&group],
        )
        .map(|row| row.get::<_, i64>(0))
        .unwrap_or(0)
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.stop_immediately()));
        // Give the postmaster a moment to release the directory.
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}
