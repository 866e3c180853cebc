//! Inputs built to exhaust memory, stack or time, each through the real
//! binary with its peak RSS measured: a gzip bomb, a 50 MB line, JSON nested
//! a million deep, a `Records` array of a million records, a YAML alias bomb
//! and pathological regexes in rule files. Each is bounded by a documented
//! limit, named in a dead letter or an error, and reading goes on.

mod common;

use common::store_dead_letters;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_trailwarden");

/// What a run printed, how it ended and its peak RSS.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    peak_mb: u64,
}

/// Run the binary in the repository with `env`, waiting with `wait4` for
/// its resource usage.
fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = dir.join("run.stdout");
    let err = dir.join("run.stderr");
    let mut command = Command::new(BIN);
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TRAILWARDEN__LOG__LEVEL", "warn")
        .env("TRAILWARDEN__API__BIND", "127.0.0.1:0")
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    for (name, value) in env {
        command.env(name, value);
    }
    // Waited for below with wait4 (std's wait would not give the usage).
    #[allow(clippy::zombie_processes)]
    let child = command.spawn().unwrap();
    eprintln!("trailwarden {}", args.join(" "));
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the child is ours and not waited for elsewhere.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    eprintln!("  peak RSS {} MB", usage.ru_maxrss / 1024);
    Run {
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        },
        stdout: std::fs::read_to_string(out).unwrap_or_default(),
        stderr: std::fs::read_to_string(err).unwrap_or_default(),
        peak_mb: usage.ru_maxrss as u64 / 1024,
    }
}

fn record_line(id: &str) -> String {
    record_at(id, "2026-03-02T10:00:00Z")
}

fn record_at(id: &str, time: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventID":"{id}","eventTime":"{time}","eventSource":"iam.amazonaws.com","eventName":"ListUsers","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9","userIdentity":{{"type":"IAMUser","accountId":"111122223333","accessKeyId":"AKIAIOSFODNN7EXAMPLE","userName":"alice"}},"recipientAccountId":"111122223333"}}"#
    )
}

fn replay(dir: &Path, env: &[(&str, &str)], file: &Path) -> (Run, PathBuf) {
    let db = dir.join("store.db");
    let result = run(
        dir,
        env,
        &[
            "replay",
            "--format",
            "jsonl",
            "--db",
            db.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(result.code, 0, "{}", result.stderr);
    (result, db)
}

/// Peak RSS of a replay of three ordinary records, the baseline.
fn baseline_mb(dir: &Path) -> u64 {
    let path = dir.join("baseline.jsonl");
    std::fs::write(
        &path,
        [record_line("b1"), record_line("b2"), record_line("b3")].join("\n"),
    )
    .unwrap();
    let (result, db) = replay(dir, &[], &path);
    std::fs::remove_file(db).unwrap();
    result.peak_mb
}

#[test]
fn a_gzip_bomb_is_a_dead_letter_under_the_default_document_limit_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = baseline_mb(dir.path());
    // 1 GiB of spaces and 'x' on one line (about 1 MB compressed), then a record.
    let path = dir.path().join("bomb.jsonl.gz");
    let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
    let block = vec![b'x'; 1 << 20];
    for _ in 0..1024 {
        encoder.write_all(&block).unwrap();
    }
    writeln!(encoder).unwrap();
    writeln!(encoder, "{}", record_line("after-the-bomb")).unwrap();
    encoder.finish().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 8 << 20);
    let (result, db) = replay(dir.path(), &[], &path);
    let letters = store_dead_letters(&db);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0].0.contains("bomb.jsonl.gz:1"), "{letters:?}");
    assert!(
        result.stderr.contains("1 events"),
        "the record after it is read: {}",
        result.stderr
    );
    assert!(
        result.peak_mb < baseline + 64,
        "peak RSS {} MB against {baseline} MB for three records",
        result.peak_mb
    );
}

#[test]
fn a_50_mb_line_and_json_nested_a_million_deep_are_dead_letters_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = baseline_mb(dir.path());
    let path = dir.path().join("hostile.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    // Line 1: a 50 MB string value in a record.
    write!(file, r#"{{"eventVersion":"1.08","eventID":"big","note":""#).unwrap();
    let block = vec![b'y'; 1 << 20];
    for _ in 0..50 {
        file.write_all(&block).unwrap();
    }
    writeln!(file, r#""}}"#).unwrap();
    // Line 2: arrays nested a million deep; line 3: objects, 200 000 deep.
    writeln!(file, "{}", "[".repeat(1_000_000)).unwrap();
    writeln!(file, "{}{}", r#"{"a":"#.repeat(200_000), "}".repeat(200_000)).unwrap();
    writeln!(file, "{}", record_line("after")).unwrap();
    drop(file);
    let (result, db) = replay(dir.path(), &[], &path);
    let letters = store_dead_letters(&db);
    let origins: Vec<&str> = letters.iter().map(|(origin, _)| origin.as_str()).collect();
    assert_eq!(
        origins
            .iter()
            .filter(|origin| origin.ends_with("hostile.jsonl:1"))
            .count(),
        1,
        "{letters:?}"
    );
    assert!(origins.iter().any(|origin| origin.ends_with(":2")), "{letters:?}");
    assert!(origins.iter().any(|origin| origin.ends_with(":3")), "{letters:?}");
    assert!(result.stderr.contains("1 events"), "{}", result.stderr);
    assert!(
        result.peak_mb < baseline + 128,
        "peak RSS {} MB (baseline {baseline})",
        result.peak_mb
    );
}

#[test]
fn a_records_array_of_a_million_records_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = baseline_mb(dir.path());
    let path = dir
        .path()
        .join("111122223333_CloudTrail_us-east-1_20260302T1000Z_big.json.gz");
    let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
    write!(encoder, r#"{{"Records":["#).unwrap();
    for n in 0..1_000_000 {
        if n > 0 {
            encoder.write_all(b",").unwrap();
        }
        // One a second, as a day's delivery file would have them.
        let time = chrono::DateTime::from_timestamp(1_772_445_600 + n, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        encoder
            .write_all(record_at(&format!("r{n}"), &time).as_bytes())
            .unwrap();
    }
    write!(encoder, "]}}").unwrap();
    encoder.finish().unwrap();
    let (result, db) = replay(dir.path(), &[], &path);
    assert!(
        result.stderr.contains("1000000 records, 1000000 events, 0 malformed"),
        "{}",
        result.stderr
    );
    assert!(store_dead_letters(&db).is_empty());
    assert!(
        result.peak_mb < baseline + 192,
        "peak RSS {} MB (baseline {baseline})",
        result.peak_mb
    );
}

/// A rules directory: the shipped pack with one more file.
fn rules_with(dir: &Path, name: &str, text: &str) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), rules.join(entry.file_name())).unwrap();
    }
    std::fs::write(rules.join(name), text).unwrap();
    rules
}

#[test]
fn a_yaml_alias_bomb_in_a_rule_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Nine levels of nine aliases each: 387 420 489 strings if expanded.
    let mut text = String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for level in 1..10 {
        let previous = format!("*a{}", level - 1);
        text.push_str(&format!("a{level}: &a{level} [{}]\n", [previous.as_str(); 9].join(",")));
    }
    let rules = rules_with(dir.path(), "bomb.yaml", &text);
    let result = run(dir.path(), &[], &["rules", "validate", rules.to_str().unwrap()]);
    assert_ne!(result.code, 0, "{}", result.stdout);
    let said = format!("{}{}", result.stdout, result.stderr);
    assert!(said.contains("bomb.yaml"), "{said}");
    assert!(result.peak_mb < 256, "peak RSS {} MB", result.peak_mb);
}

#[test]
fn a_pathological_regex_in_a_rule_is_refused_naming_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"rules:
  - id: huge-regex
    title: A regex whose compiled program passes the size limit
    level: low
    description: "Never loads."
    match:
      action: {regex: "(?:a{1000}){1000}"}
    output: "never"
"#;
    let rules = rules_with(dir.path(), "regex.yaml", text);
    let result = run(dir.path(), &[], &["rules", "validate", rules.to_str().unwrap()]);
    assert_ne!(result.code, 0, "{}", result.stdout);
    let said = format!("{}{}", result.stdout, result.stderr);
    assert!(said.contains("regex.yaml:7") && said.contains("size limit"), "{said}");
    assert!(result.peak_mb < 256, "peak RSS {} MB", result.peak_mb);
}
