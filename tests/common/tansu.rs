//! A tansu broker (a real Kafka-protocol broker) for the end-to-end Kafka
//! tests: started on a free loopback port, killed on drop. `scripts/test`
//! installs tansu; set `TANSU` to use another binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("TANSU") {
        return PathBuf::from(path);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    for candidate in [format!("{home}/.cargo/bin/tansu"), "/usr/local/bin/tansu".to_string()] {
        if Path::new(&candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("tansu is not installed: run scripts/test (it installs it) or set TANSU=/path/to/tansu");
}

/// A tansu broker on a free loopback port; killed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    storage: String,
    log: PathBuf,
}

impl Broker {
    pub fn start(storage: &str, log: &Path) -> Broker {
        let port = free_port();
        let mut broker = Broker {
            child: spawn_tansu(port, storage, log),
            port,
            storage: storage.to_string(),
            log: log.to_path_buf(),
        };
        broker.wait_ready();
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "tansu exited ({status}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "tansu did not start listening");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = Command::new(tansu_binary())
                .args(["topic", "create", name, "--partitions", &partitions.to_string()])
                .args(["--broker", &format!("tcp://{}", self.address())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("running tansu topic create");
            if status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "could not create topic {name}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Kill the broker and start it again on the same port and storage.
    pub fn restart(&mut self, down_for: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down_for);
        self.child = spawn_tansu(self.port, &self.storage, &self.log);
        self.wait_ready();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_tansu(port: u16, storage: &str, log_path: &Path) -> Child {
    let url = format!("tcp://127.0.0.1:{port}");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("the broker log");
    // The broker runs in the test's directory: tansu reads sqlite:// paths relative to it.
    let dir = log_path.parent().unwrap_or(Path::new("."));
    Command::new(tansu_binary())
        .current_dir(dir)
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", storage])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting tansu")
}
