//! Running as a systemd service: the shipped unit passes `systemd-analyze
//! verify` without a word, and the daemon speaks systemd's notify protocol —
//! READY=1 once its store is open, WATCHDOG=1 pings at half the watchdog
//! interval, STOPPING=1 on SIGTERM — over a datagram socket the test holds
//! as systemd would.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn the_shipped_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(repo().join("packaging/systemd/trailwarden.service")).unwrap();
    assert!(
        unit.contains("Type=notify")
            && unit.contains("WatchdogSec=")
            && unit.contains("ExecReload=/bin/kill -HUP $MAINPID")
    );
    for hardening in [
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/trailwarden",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
    // Verified as installed, with the binary where the package puts it
    // replaced by the one built here (verify checks it is executable).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailwarden.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/trailwarden", env!("CARGO_BIN_EXE_trailwarden")),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/test installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success() && said.trim().is_empty(), "{said}");
}

/// Datagrams received on `socket` until `until` holds for what came, or the time is up.
fn receive_until(socket: &UnixDatagram, got: &mut Vec<String>, within: Duration, until: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + within;
    let mut buffer = [0u8; 4096];
    while !until(got) {
        assert!(Instant::now() < deadline, "timed out; received {got:?}");
        if let Ok(length) = socket.recv(&mut buffer) {
            got.push(String::from_utf8_lossy(&buffer[..length]).into_owned());
        }
    }
}

#[test]
fn the_daemon_notifies_ready_pings_the_watchdog_and_says_it_is_stopping() {
    let sandbox = Sandbox::named("store.db", "service.toml");
    let watch = sandbox.path("watch");
    std::fs::create_dir_all(&watch).unwrap();
    sandbox.write_config(
        &Config::standard(&sandbox.store)
            .files(&[&watch])
            .set("store.backup", "dir", ""),
    );
    let socket_path: PathBuf = sandbox.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // WATCHDOG_PID must be the daemon's own pid, as systemd sets it: the
    // shell exports its pid and execs the daemon in its place.
    let mut child = Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_trailwarden"))
        .arg("--config")
        .arg(&sandbox.config)
        .arg("run")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env("TRAILWARDEN__API__BIND", "127.0.0.1:0")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    receive_until(&socket, &mut got, Duration::from_secs(60), |got| {
        got.iter().any(|message| message.lines().any(|line| line == "READY=1"))
    });
    assert!(sandbox.store.exists(), "READY=1 comes once the store is open");
    let ready = got.iter().find(|message| message.contains("READY=1")).unwrap();
    assert!(ready.contains("STATUS=running; console http://127.0.0.1:"), "{ready}");
    // Pings every 0.2 s (half of WATCHDOG_USEC): a few within two seconds.
    let start = Instant::now();
    receive_until(&socket, &mut got, Duration::from_secs(10), |got| {
        got.iter().filter(|message| message.trim() == "WATCHDOG=1").count() >= 4
    });
    assert!(start.elapsed() < Duration::from_secs(5));
    // SIGTERM: STOPPING=1, then a clean exit.
    // SAFETY: sending a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    receive_until(&socket, &mut got, Duration::from_secs(30), |got| {
        got.iter()
            .any(|message| message.lines().any(|line| line == "STOPPING=1"))
    });
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_packaged_and_container_configurations_load_with_the_compose_overrides() {
    use trailwarden::config::{Settings, SourceKind};
    let read =
        |path: &str| std::fs::read_to_string(repo().join(path)).unwrap_or_else(|error| panic!("{path}: {error}"));
    // The Debian package's configuration.
    let deb = Settings::from_sources(
        "packaging/debian/trailwarden.toml",
        &read("packaging/debian/trailwarden.toml"),
        &[],
    )
    .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(deb.store.path, PathBuf::from("/var/lib/trailwarden/trailwarden.db"));
    assert_eq!(deb.rules.dir, PathBuf::from("/etc/trailwarden/rules"));
    assert_eq!(deb.api.bind.to_string(), "127.0.0.1:8080");
    // The image's, with the variables compose.yaml sets.
    let compose: serde_json::Value = serde_saphyr::from_str(&read("compose.yaml")).unwrap();
    let variables: Vec<(String, String)> = compose["services"]["trailwarden"]["environment"]
        .as_object()
        .expect("services.trailwarden.environment")
        .iter()
        .map(|(name, value)| {
            (
                name.clone(),
                value.as_str().map_or_else(|| value.to_string(), str::to_string),
            )
        })
        .collect();
    let container = Settings::from_sources(
        "packaging/container/trailwarden.toml",
        &read("packaging/container/trailwarden.toml"),
        &variables,
    )
    .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(container.source, SourceKind::Kafka);
    assert_eq!(container.kafka.topics, vec!["audit".to_string()]);
    assert_eq!(
        container.store.path,
        PathBuf::from("/var/lib/trailwarden/trailwarden.db")
    );
    assert_eq!(container.api.bind.to_string(), "0.0.0.0:8080");
    // The three-member cluster: every member reads the group from Kafka into
    // the shared PostgreSQL store, with the image's configuration.
    let cluster: serde_json::Value = serde_saphyr::from_str(&read("packaging/compose/cluster.yaml")).unwrap();
    for member in ["tw-1", "tw-2", "tw-3"] {
        let variables: Vec<(String, String)> = cluster["services"][member]["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("services.{member}.environment"))
            .iter()
            .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_string()))
            .collect();
        let settings = Settings::from_sources(
            "packaging/container/trailwarden.toml",
            &read("packaging/container/trailwarden.toml"),
            &variables,
        )
        .unwrap_or_else(|error| panic!("{member}: {error}"));
        assert_eq!(settings.source, SourceKind::Kafka, "{member}");
        assert_eq!(settings.kafka.group_id, "trailwarden", "{member}");
        assert!(
            settings.store.path.to_string_lossy().starts_with("postgres://"),
            "{member}: {:?}",
            settings.store.path
        );
        assert_eq!(cluster["services"][member]["restart"], "on-failure", "{member}");
    }
    // What the Dockerfile copies is in the repository and let through by .dockerignore.
    let dockerfile = read("Dockerfile");
    let ignore = read(".dockerignore");
    for line in dockerfile
        .lines()
        .filter(|line| line.starts_with("COPY ") && !line.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            let source = source.trim_end_matches('/');
            let let_through = ignore
                .lines()
                .filter_map(|rule| rule.strip_prefix('!'))
                .any(|allowed| source == allowed || source.starts_with(&format!("{allowed}/")));
            assert!(let_through, ".dockerignore keeps {source} out");
            if source != "target/release/trailwarden" {
                assert!(repo().join(source).exists(), "{source} is not in the repository");
            }
        }
    }
}
