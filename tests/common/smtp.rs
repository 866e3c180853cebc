//! A real SMTP server on loopback for the notification tests: aiosmtpd
//! (`tests/support/smtp_sink.py`) writing every accepted message to a
//! directory as JSON.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::paths::repo;

pub const PYTHON: &str = "/usr/bin/python3";

/// aiosmtpd writing every accepted message to a directory.
pub struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl SmtpSink {
    pub fn start(port: u16, extra: &[&str]) -> SmtpSink {
        let dir = tempfile::tempdir().expect("dir");
        let mut child = Command::new(PYTHON)
            .arg(repo().join("tests/support/smtp_sink.py"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs (scripts/test installs python3-aiosmtpd)");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut ready)
            .expect("read");
        assert_eq!(
            ready.trim(),
            "ready",
            "the SMTP sink did not start: is python3-aiosmtpd installed? (scripts/test installs it)"
        );
        SmtpSink { child, dir, port }
    }

    pub fn messages(&self) -> Vec<Value> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read dir")
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|path| serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json"))
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
