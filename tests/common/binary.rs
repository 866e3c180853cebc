//! The `trailwarden` binary under test: a configuration file built key by
//! key, the command line that runs the binary (working directory,
//! environment, `--config`), a temporary directory holding configuration,
//! store and input, and a running daemon that is stopped with SIGTERM when
//! the test lets go of it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::paths::{repo, rules_dir};
use super::records::jsonl;

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_trailwarden");

/// How long a daemon dropped by a test gets to stop after SIGTERM before it
/// is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- configuration

/// A value in a configuration file.
pub trait ToToml {
    fn to_toml(&self) -> String;
}

impl ToToml for &str {
    /// Quoted as the tests always wrote it (`{:?}`): a TOML basic string for
    /// the paths and words tests put there (Rust's escapes for control
    /// characters are not TOML's).
    fn to_toml(&self) -> String {
        format!("{self:?}")
    }
}

impl ToToml for String {
    fn to_toml(&self) -> String {
        self.as_str().to_toml()
    }
}

impl ToToml for &Path {
    fn to_toml(&self) -> String {
        self.display().to_string().to_toml()
    }
}

impl ToToml for PathBuf {
    fn to_toml(&self) -> String {
        self.as_path().to_toml()
    }
}

impl ToToml for &PathBuf {
    fn to_toml(&self) -> String {
        self.as_path().to_toml()
    }
}

impl ToToml for bool {
    fn to_toml(&self) -> String {
        self.to_string()
    }
}

macro_rules! integer_to_toml {
    ($($integer:ty),*) => {
        $(impl ToToml for $integer {
            fn to_toml(&self) -> String {
                self.to_string()
            }
        })*
    };
}

integer_to_toml!(i32, i64, u16, u32, u64, usize);

/// A list of paths.
impl ToToml for &[&Path] {
    fn to_toml(&self) -> String {
        let items: Vec<String> = self.iter().map(|path| path.to_toml()).collect();
        format!("[{}]", items.join(", "))
    }
}

/// TOML written as is (an inline table, an array of strings).
pub struct Raw<'a>(pub &'a str);

impl ToToml for Raw<'_> {
    fn to_toml(&self) -> String {
        self.0.to_string()
    }
}

/// A configuration file's text: sections in the order they were first set,
/// keys in the order they were set, then raw TOML appended (arrays of
/// tables, or a test's own sections).
#[derive(Clone, Debug, Default)]
pub struct Config {
    sections: Vec<(String, Vec<(String, String)>)>,
    tail: String,
}

impl Config {
    /// Nothing set: the binary's defaults.
    pub fn new() -> Config {
        Config::default()
    }

    /// What most tests start from: the store at `store` with
    /// `synchronous = "normal"` (durability is not under test), the shipped
    /// rules, not watched, warnings logged, and the API on a port the system
    /// picks (tests run daemons side by side).
    pub fn standard(store: &Path) -> Config {
        Config::new()
            .set("store", "path", store)
            .set("store", "synchronous", "normal")
            .set("rules", "dir", rules_dir())
            .set("rules", "watch", false)
            .set("log", "level", "warn")
            .set("api", "bind", "127.0.0.1:0")
            // The role tests make dozens of failed calls a minute from one address.
            .set("api", "max_auth_failures", 0)
    }

    /// Files and directories to read (`[source.files] paths`).
    pub fn files(self, paths: &[&Path]) -> Config {
        self.set("source.files", "paths", paths)
    }

    /// `[section] key = value`, replacing an earlier value of the key.
    pub fn set(mut self, section: &str, key: &str, value: impl ToToml) -> Config {
        let value = value.to_toml();
        let index = match self.sections.iter().position(|(name, _)| name == section) {
            Some(index) => index,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let keys = &mut self.sections[index].1;
        match keys.iter_mut().find(|(name, _)| name == key) {
            Some((_, old)) => *old = value,
            None => keys.push((key.to_string(), value)),
        }
        self
    }

    /// Leave `key` to the binary's default (a section left empty goes too).
    pub fn unset(mut self, section: &str, key: &str) -> Config {
        for (_, keys) in self.sections.iter_mut().filter(|(name, _)| name == section) {
            keys.retain(|(name, _)| name != key);
        }
        self.sections.retain(|(_, keys)| !keys.is_empty());
        self
    }

    /// Raw TOML after everything set (it should start its own sections).
    pub fn append(mut self, text: &str) -> Config {
        self.tail.push_str(text);
        self
    }

    pub fn text(&self) -> String {
        let sections: Vec<String> = self
            .sections
            .iter()
            .map(|(name, keys)| {
                let mut text = format!("[{name}]\n");
                for (key, value) in keys {
                    text.push_str(&format!("{key} = {value}\n"));
                }
                text
            })
            .collect();
        sections.join("\n") + &self.tail
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.text()).unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
    }
}

// ---------------------------------------------------------------- the command line

/// How the binary is run: its working directory (the repository unless told
/// otherwise: relative paths in arguments and configurations are relative
/// to it), its environment, and its configuration file.
#[derive(Clone, Debug)]
pub struct Trailwarden {
    config: Option<PathBuf>,
    current_dir: PathBuf,
    /// Variables to set (`Some`) or remove (`None`), in order.
    env: Vec<(String, Option<String>)>,
}

impl Default for Trailwarden {
    fn default() -> Trailwarden {
        Trailwarden::new()
    }
}

impl Trailwarden {
    /// The binary in the repository, no `--config`, the test's environment.
    pub fn new() -> Trailwarden {
        Trailwarden {
            config: None,
            current_dir: repo(),
            env: Vec::new(),
        }
    }

    /// `--config path` before every command.
    pub fn config(mut self, path: impl Into<PathBuf>) -> Trailwarden {
        self.config = Some(path.into());
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Trailwarden {
        self.current_dir = dir.into();
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Trailwarden {
        self.env.push((name.to_string(), Some(value.to_string())));
        self
    }

    pub fn env_remove(mut self, name: &str) -> Trailwarden {
        self.env.push((name.to_string(), None));
        self
    }

    /// `TRAILWARDEN__API__BIND=127.0.0.1:0`: a daemon's API on a port the
    /// system picks whatever the configuration says, so daemons (and
    /// `run --once`) of tests running side by side never collide.
    pub fn api_on_any_port(self) -> Trailwarden {
        self.env("TRAILWARDEN__API__BIND", "127.0.0.1:0")
    }

    /// Without `TRAILWARDEN_LOG` from the test's environment: the
    /// configuration's log filter applies.
    pub fn without_log_env(self) -> Trailwarden {
        self.env_remove("TRAILWARDEN_LOG")
    }

    /// The command, ready for more arguments, stdio or environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.current_dir(&self.current_dir);
        for (name, value) in &self.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        command.args(args);
        command
    }

    /// Run to the end; whatever happened.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the trailwarden binary runs")
    }

    /// Run to the end; the test fails, showing the output, unless it succeeded.
    pub fn ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "trailwarden {args:?} failed ({}):\n{}{}",
            output.status,
            stdout(&output),
            stderr(&output)
        );
        output
    }

    /// `ok`, and its standard output.
    pub fn stdout(&self, args: &[&str]) -> String {
        stdout(&self.ok(args))
    }

    /// `ok`, and its standard output as one JSON document.
    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.stdout(args);
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("trailwarden {args:?}: {error}: {text}"))
    }

    /// `ok`, and its standard output as JSON lines.
    pub fn jsonl(&self, args: &[&str]) -> Vec<Value> {
        jsonl(&self.stdout(args))
    }

    /// Start the binary (usually `run`) and return at once.
    pub fn start(&self, args: &[&str], log: Log) -> Daemon {
        Daemon::spawn(self.command(args), log)
    }
}

/// Standard output, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------- a test's directory

/// A temporary directory for one test, removed with it: the configuration
/// file, the store it names, and the test's input; the binary runs against
/// that configuration.
pub struct Sandbox {
    dir: tempfile::TempDir,
    /// The store the configuration should name (not created here).
    pub store: PathBuf,
    /// The configuration file (`write_config` writes it).
    pub config: PathBuf,
    /// The binary with `--config` this configuration, from the repository.
    pub bin: Trailwarden,
}

impl Sandbox {
    /// `store.db` and `config.toml` in a new temporary directory; the
    /// configuration is not written yet.
    pub fn new() -> Sandbox {
        Sandbox::named("store.db", "config.toml")
    }

    /// With other names for the store and the configuration file.
    pub fn named(store: &str, config: &str) -> Sandbox {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = dir.path().join(store);
        let config = dir.path().join(config);
        let bin = Trailwarden::new().config(&config);
        Sandbox {
            dir,
            store,
            config,
            bin,
        }
    }

    /// A new sandbox with the configuration `configure` makes of it.
    pub fn with_config(configure: impl FnOnce(&Sandbox) -> Config) -> Sandbox {
        let sandbox = Sandbox::new();
        sandbox.write_config(&configure(&sandbox));
        sandbox
    }

    /// Change how the binary is run (environment, working directory).
    pub fn with_bin(mut self, change: impl FnOnce(Trailwarden) -> Trailwarden) -> Sandbox {
        self.bin = change(self.bin);
        self
    }

    /// The binary runs in the sandbox's directory rather than the repository.
    pub fn in_its_dir(mut self) -> Sandbox {
        self.bin = self.bin.current_dir(self.dir.path());
        self
    }

    pub fn write_config(&self, config: &Config) {
        config.write(&self.config);
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The store path as an argument.
    pub fn store_arg(&self) -> &str {
        self.store.to_str().expect("a UTF-8 temporary path")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.bin.command(args)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.bin.run(args)
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        self.bin.ok(args)
    }

    pub fn stdout(&self, args: &[&str]) -> String {
        self.bin.stdout(args)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        self.bin.json(args)
    }

    pub fn jsonl(&self, args: &[&str]) -> Vec<Value> {
        self.bin.jsonl(args)
    }

    pub fn start(&self, args: &[&str], log: Log) -> Daemon {
        self.bin.start(args, log)
    }
}

// ---------------------------------------------------------------- a running daemon

/// Where a started binary's output goes.
pub enum Log {
    /// Standard error read line by line into memory (`Daemon::stderr`,
    /// `Daemon::read_lines_until`); standard output discarded.
    Collect,
    /// Standard output and error appended to a file (kept across restarts
    /// of the same daemon).
    File(PathBuf),
    /// Both discarded.
    Discard,
}

/// A started binary. Dropped while it still runs, it gets SIGTERM, then
/// SIGKILL if it has not stopped in 20 s.
pub struct Daemon {
    child: Child,
    /// The log file (`Log::File`).
    log: Option<PathBuf>,
    /// Standard error so far (`Log::Collect`).
    collected: Arc<Mutex<String>>,
    /// Each line of standard error as it comes (`Log::Collect`).
    lines: Option<Receiver<String>>,
    /// The thread reading standard error; joined once the process is gone
    /// so `stderr` is complete.
    reader: Option<JoinHandle<()>>,
}

impl Daemon {
    /// Start `command` (stdin closed) with its output sent where `log` says.
    pub fn spawn(mut command: Command, log: Log) -> Daemon {
        command.stdin(Stdio::null());
        let log_path = match &log {
            Log::Collect => {
                command.stdout(Stdio::null()).stderr(Stdio::piped());
                None
            }
            Log::File(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap_or_else(|error| panic!("the log file {}: {error}", path.display()));
                let second = file.try_clone().expect("a second handle on the log file");
                command.stdout(second).stderr(file);
                Some(path.clone())
            }
            Log::Discard => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
                None
            }
        };
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let collected = Arc::new(Mutex::new(String::new()));
        let (lines, reader) = match child.stderr.take() {
            Some(stderr) => {
                let (sender, receiver) = std::sync::mpsc::channel();
                let sink = collected.clone();
                let reader = std::thread::spawn(move || {
                    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                        sink.lock().expect("the log lock").push_str(&format!("{line}\n"));
                        let _ = sender.send(line);
                    }
                });
                (Some(receiver), Some(reader))
            }
            None => (None, None),
        };
        Daemon {
            child,
            log: log_path,
            collected,
            lines,
            reader,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Standard error so far: collected, or the log file's content.
    pub fn stderr(&self) -> String {
        match &self.log {
            Some(path) => std::fs::read_to_string(path).unwrap_or_default(),
            None => self.collected.lock().expect("the log lock").clone(),
        }
    }

    /// The last `count` lines of `stderr`.
    pub fn tail(&self, count: usize) -> String {
        let text = self.stderr();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(count)..].join("\n")
    }

    /// Lines of standard error not read by an earlier call, up to and
    /// including the first for which `stop` holds, or all that came before
    /// `timeout` or the end of the output (`Log::Collect` only).
    pub fn read_lines_until(&self, timeout: Duration, mut stop: impl FnMut(&str) -> bool) -> String {
        let lines = self.lines.as_ref().expect("read_lines_until needs Log::Collect");
        let deadline = Instant::now() + timeout;
        let mut text = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                    if stop(&line) {
                        return text;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return text,
            }
        }
    }

    /// Send `signal`; whether it was delivered.
    pub fn signal(&self, signal: libc::c_int) -> bool {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a process id");
        // SAFETY: kill(2) takes plain integers; the process is our child, not
        // yet reaped, so the id is still its own.
        unsafe { libc::kill(pid, signal) == 0 }
    }

    /// SIGTERM: stop intake, drain, commit, exit.
    pub fn terminate(&self) -> bool {
        self.signal(libc::SIGTERM)
    }

    /// SIGHUP: reload the rules.
    pub fn hangup(&self) -> bool {
        self.signal(libc::SIGHUP)
    }

    /// SIGKILL (a crash), and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        self.wait();
    }

    /// Its exit status, if it has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().expect("waiting for the daemon")?;
        self.join_reader();
        Some(status)
    }

    /// Wait for it to end, however long that takes.
    pub fn wait(&mut self) -> ExitStatus {
        let status = self.child.wait().expect("waiting for the daemon");
        self.join_reader();
        status
    }

    /// Wait up to `timeout` for it to end; `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
            let deadline = Instant::now() + STOP_PATIENCE;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        self.join_reader();
    }
}
