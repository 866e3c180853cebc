//! What the command line shows a person: text from records and triage escaped
//! in every human-readable output (JSON exact), tables that stay aligned and
//! say what they hold, and configuration or store mistakes refused by name
//! instead of going silent.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};
use trailwarden::terminal::width;

/// A user name that clears the screen, retitles the window, rings the bell
/// and reverses the rest of the line.
const HOSTILE_NAME: &str = "evil\u{1b}[2J\u{1b}]0;pwned\u{7}bot\u{202e}gnp.exe";
/// A source IP that moves the cursor up a line.
const HOSTILE_IP: &str = "198.51.100.7\u{1b}[1A";
/// A user agent with a C1 CSI (one character: ESC [) and a bidi isolate.
const HOSTILE_AGENT: &str = "aws-cli/2\u{9b}31m\u{2066}x";
const KEY: &str = "AKIAXEK3Q7BZ7HNM4P2L";

/// A config in `dir`: the repository's rules (`rules.watch` left to its
/// default), a store in `dir`, warnings logged.
fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("config.toml");
    Config::standard(&dir.join("store.db"))
        .unset("rules", "watch")
        .append(extra)
        .write(&path);
    path
}

/// The binary with `config`, logging as the configuration says (not as the
/// test's `TRAILWARDEN_LOG` would).
fn bin(config: &Path) -> Trailwarden {
    Trailwarden::new().without_log_env().config(config)
}

/// An AWS record (the shipped single-record fixture) as `user_name` calling
/// `event_name` from `source_ip`.
fn aws_record(event_name: &str, user_name: &str, source_ip: &str, user_agent: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(RECORDS).join("aws_single_record.json")).unwrap();
    let mut record: Value = serde_json::from_str(&text).unwrap();
    record["eventName"] = json!(event_name);
    record["userIdentity"]["userName"] = json!(user_name);
    record["userIdentity"]["arn"] = json!(format!("arn:aws:iam::493817265041:user/{user_name}"));
    record["sourceIPAddress"] = json!(source_ip);
    record["userAgent"] = json!(user_agent);
    // One event per (call, caller): traces and samples are kept per event id.
    record["eventID"] = json!(format!("{event_name}-{user_name}"));
    record
}

/// No character a terminal would act on: ESC, BEL, C1 CSI, bidi override and isolates.
fn assert_inert(what: &str, text: &str) {
    for bad in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}', '\u{2066}'] {
        assert!(
            !text.contains(bad),
            "{what} passes U+{:04X} to the terminal:\n{text}",
            bad as u32
        );
    }
}

#[test]
fn human_output_shows_control_and_bidi_characters_escaped_and_json_keeps_them_exact() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let db = dir.path().join("store.db");
    let db_arg = db.to_str().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap();
    // DeleteUser is a key operation (a trace) and a high-risk call (alarms).
    write_jsonl(
        &input.join("calls.jsonl"),
        &[aws_record("DeleteUser", HOSTILE_NAME, HOSTILE_IP, HOSTILE_AGENT)],
    );
    // A delivered file whose name and content carry ESC: a dead letter, logged.
    std::fs::write(
        input.join("bad\u{1b}[2J.jsonl"),
        "{\"eventVersion\": \"1.0\", \"x\u{1b}[31m\": \n",
    )
    .unwrap();

    let replay = bin(&config).ok(&["replay", "--db", db_arg, input.to_str().unwrap()]);
    assert_inert("replay", &stdout(&replay));
    assert!(stdout(&replay).contains("evil\\x1b[2J"), "{}", stdout(&replay));
    // The dead letter's warning is a human-format log line.
    assert!(stderr(&replay).contains("bad\\x1b[2J.jsonl"), "{}", stderr(&replay));
    assert_inert("a log line", &stderr(&replay));

    let list = stdout(&bin(&config).ok(&["alarms", "list", "--db", db_arg, "--format", "json"]));
    let alarms: Vec<Value> = serde_json::from_str(&list).unwrap();
    let id = alarms
        .iter()
        .find(|alarm| alarm["rule"] == "sec09-high-risk-operation")
        .expect("DeleteUser raises the key-operation alarm")["id"]
        .to_string();
    bin(&config).ok(&[
        "alarms",
        "set-status",
        &id,
        "processed",
        "--actor",
        "mallory\u{1b}[8m",
        "--reason",
        "fine\u{1b}[2K\u{202e}",
        "--db",
        db_arg,
    ]);

    let human: Vec<(&str, Vec<&str>)> = vec![
        ("alarms list", vec!["alarms", "list"]),
        ("alarms show", vec!["alarms", "show", &id]),
        ("activity", vec!["activity"]),
        ("traces", vec!["traces"]),
        ("dead-letters", vec!["dead-letters"]),
    ];
    for (what, mut args) in human {
        args.extend(["--db", db_arg]);
        let output = bin(&config).ok(&args);
        assert_inert(what, &stdout(&output));
        assert_inert(what, &stderr(&output));
    }
    let show = stdout(&bin(&config).ok(&["alarms", "show", &id, "--db", db_arg]));
    assert!(
        show.contains("evil\\x1b[2J\\x1b]0;pwned\\x07bot\\u{202e}gnp.exe") && show.contains(r"198.51.100.7\x1b[1A"),
        "{show}"
    );
    assert!(show.contains(r"by mallory\x1b[8m: fine\x1b[2K\u{202e}"), "{show}");
    let traces = stdout(&bin(&config).ok(&["traces", "--db", db_arg]));
    assert!(traces.contains("evil\\x1b[2J"), "{traces}");
    let letters = stdout(&bin(&config).ok(&["dead-letters", "--db", db_arg]));
    assert!(letters.contains("bad\\x1b[2J.jsonl"), "{letters}");

    // JSON is data: the same fields come out exactly as they went in.
    let detail: Value = serde_json::from_slice(
        &bin(&config)
            .ok(&["alarms", "show", &id, "--db", db_arg, "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(detail["principal_name"], HOSTILE_NAME);
    assert_eq!(detail["calls"][0]["source_ip"], HOSTILE_IP);
    assert_eq!(detail["history"][0]["reason"], "fine\u{1b}[2K\u{202e}");
    let trace: Value = serde_json::from_str(
        stdout(&bin(&config).ok(&["traces", "--db", db_arg, "--format", "jsonl"]))
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(trace["operator"], HOSTILE_NAME);
    let matches = stdout(&bin(&config).ok(&["replay", "--format", "jsonl", input.to_str().unwrap()]));
    let first: Value = serde_json::from_str(matches.lines().next().unwrap()).unwrap();
    assert_eq!(first["principal"], HOSTILE_NAME);
}

/// The display column where `needle` starts in `line`.
fn column_of(line: &str, needle: &str) -> Option<usize> {
    line.find(needle).map(|at| width(&line[..at]))
}

#[test]
fn tables_name_title_account_and_key_count_in_words_and_stay_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let db = dir.path().join("store.db");
    let db_arg = db.to_str().unwrap();
    let long_name = "svc-".to_string() + &"x".repeat(70);
    let calls = dir.path().join("calls.jsonl");
    write_jsonl(
        &calls,
        &[
            aws_record("DeleteUser", "deploy-bot", "34.229.17.208", "aws-cli/2"),
            aws_record("DeleteUser", &long_name, "34.229.17.208", "aws-cli/2"),
            aws_record("DeleteUser", "张三", "34.229.17.208", "aws-cli/2"),
            aws_record("AttachUserPolicy", "deploy-bot", "34.229.17.208", "aws-cli/2"),
        ],
    );
    let replay = stdout(&bin(&config).ok(&["replay", "--db", db_arg, calls.to_str().unwrap()]));
    let header = replay.lines().next().unwrap();
    assert!(header.contains("ACCESS KEY"), "{replay}");
    assert!(replay.contains("AKIAX****M4P2L") && !replay.contains(KEY), "{replay}");
    // Fixed-width columns: every value of a column starts where its header does.
    let action_column = column_of(header, "ACTION").unwrap();
    for line in replay.lines().skip(1) {
        let at = column_of(line, "iam.").unwrap_or_else(|| panic!("no action in {line:?}"));
        assert_eq!(at, action_column, "{replay}");
    }

    let list = stdout(&bin(&config).ok(&["alarms", "list", "--db", db_arg]));
    let header = list.lines().next().unwrap();
    assert!(header.contains("TITLE") && header.contains("ACCOUNT"), "{list}");
    assert!(list.contains("Administrator policy attached"), "{list}");
    assert!(list.contains("aws 493817265041"), "{list}");

    let alarms: Vec<Value> = serde_json::from_slice(
        &bin(&config)
            .ok(&["alarms", "list", "--db", db_arg, "--format", "json"])
            .stdout,
    )
    .unwrap();
    for alarm in &alarms {
        let count = alarm["count"].as_u64().unwrap();
        let show = stdout(&bin(&config).ok(&["alarms", "show", &alarm["id"].to_string(), "--db", db_arg]));
        let expected = if count == 1 {
            "(1 time)".to_string()
        } else {
            format!("({count} times)")
        };
        assert!(show.contains(&expected), "{show}");
        assert!(!show.contains("(1 times)"), "{show}");
    }
    assert!(
        alarms.iter().any(|alarm| alarm["count"] == 1) && alarms.iter().any(|alarm| alarm["count"] == 3),
        "{alarms:?}"
    );

    // traces: a 74-character operator and a CJK one do not push the columns.
    let traces = stdout(&bin(&config).ok(&["traces", "--db", db_arg]));
    let lines: Vec<&str> = traces.lines().collect();
    assert_eq!(lines.len(), 4, "{traces}");
    assert!(
        traces.contains("svc-xxx") && traces.contains('…') && !traces.contains(&long_name),
        "{traces}"
    );
    for header in ["METHOD", "ACTION", "STATUS", "SOURCE IP"] {
        let column = column_of(lines[0], header).unwrap();
        let value = match header {
            "METHOD" => "api",
            "ACTION" => "iam.DeleteUser",
            "STATUS" => "success",
            _ => "34.229.17.208",
        };
        for line in &lines[1..] {
            assert_eq!(column_of(line, value), Some(column), "{header} in\n{traces}");
        }
    }
}

#[test]
fn an_empty_dead_letter_list_says_so_in_table_format_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let db = dir.path().join("store.db");
    bin(&config).ok(&[
        "replay",
        "--db",
        db.to_str().unwrap(),
        &format!("{RECORDS}/aws_single_record.json"),
    ]);
    let table = bin(&config).ok(&["dead-letters", "--db", db.to_str().unwrap()]);
    assert!(stdout(&table).starts_with("no dead letters in "), "{}", stdout(&table));
    let jsonl = bin(&config).ok(&["dead-letters", "--db", db.to_str().unwrap(), "--format", "jsonl"]);
    assert!(jsonl.stdout.is_empty(), "{}", stdout(&jsonl));
}

#[test]
fn read_only_commands_refuse_a_missing_store_by_path_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let typo = dir.path().join("stroe.db");
    let typo_arg = typo.to_str().unwrap();
    let read_only: [&[&str]; 14] = [
        &["store", "verify"],
        &["store", "head"],
        &["alarms", "list"],
        &["alarms", "show", "1"],
        &[
            "alarms",
            "set-status",
            "1",
            "processed",
            "--actor",
            "a",
            "--reason",
            "r",
        ],
        &["activity"],
        &["traces"],
        &["dead-letters"],
        &["allowlist", "list"],
        &["allowlist", "report"],
        &["remark", "list"],
        &["assets", "list"],
        &["notify", "deliveries"],
        &["notify", "resend", "1"],
    ];
    for command in read_only {
        let mut args = command.to_vec();
        args.extend(["--db", typo_arg]);
        let output = bin(&config).run(&args);
        assert_eq!(output.status.code(), Some(1), "{command:?}: {}", stdout(&output));
        let message = stderr(&output);
        assert!(
            message.contains(&format!("no alarm store at {typo_arg}")) && message.contains("from --db"),
            "{command:?}: {message}"
        );
        assert!(!typo.exists(), "{command:?} created {typo_arg}");
    }
    // The configured store is named with the key and file it came from.
    let output = bin(&config).run(&["store", "verify"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("from `store.path` in") && stderr(&output).contains("config.toml"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join("store.db").exists());
    // Commands that add data still make a new store.
    let fresh = dir.path().join("fresh.db");
    bin(&config).ok(&[
        "remark",
        "set",
        "ip",
        "10.0.0.1",
        "jump host",
        "--db",
        fresh.to_str().unwrap(),
    ]);
    assert!(fresh.exists());
    let verify = bin(&config).ok(&["store", "verify", "--db", fresh.to_str().unwrap()]);
    assert!(stdout(&verify).starts_with("chain ok"), "{}", stdout(&verify));
}

#[test]
fn a_missing_rules_directory_is_named_absolutely_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let missing = dir.path().join("rulez");
    std::fs::write(&config, "[rules]\ndir = \"rulez\"\n[log]\nlevel = \"warn\"\n").unwrap();
    // Run from the test's directory: the relative rules directory is beside the config.
    let output = Trailwarden::new()
        .current_dir(dir.path())
        .command(&["--config", config.to_str().unwrap(), "rules", "validate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains(&format!("cannot read rules directory {}: ", missing.display())) && text.contains("No such file"),
        "{text}"
    );
    assert!(!text.contains(":0:0"), "{text}");
    let output = Trailwarden::new()
        .current_dir(dir.path())
        .command(&["--config", config.to_str().unwrap(), "replay", "-"])
        .output()
        .unwrap();
    assert!(
        stderr(&output).contains(&format!("cannot read rules directory {}", missing.display())),
        "{}",
        stderr(&output)
    );
}

#[test]
fn environment_and_log_filter_mistakes_are_named_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let with_env = |name: &str, value: &str| {
        bin(&config)
            .env(name, value)
            .command(&["rules", "list"])
            .output()
            .unwrap()
    };
    let output = with_env("TRAILWARDEN__STORE__PAHT", "x");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("environment variable TRAILWARDEN__STORE__PAHT")
            && !stderr(&output).contains("config.toml"),
        "{}",
        stderr(&output)
    );
    let output = with_env("TRAILWARDEN__PIPELINE__BATCH_EVENTS", "0");
    assert!(
        stderr(&output).contains("TRAILWARDEN__PIPELINE__BATCH_EVENTS")
            && stderr(&output).contains("pipeline.batch_events"),
        "{}",
        stderr(&output)
    );
    for (name, value) in [("TRAILWARDEN__LOG__LEVEL", "warnn"), ("TRAILWARDEN_LOG", "warnn")] {
        let output = with_env(name, value);
        assert_eq!(output.status.code(), Some(1), "{name}");
        assert!(
            stderr(&output).contains(name) && stderr(&output).contains("off, error, warn, info, debug, trace"),
            "{}",
            stderr(&output)
        );
    }
}

/// The binary, run directly (these tests need no configuration).
const BIN: &str = env!("CARGO_BIN_EXE_trailwarden");

#[test]
fn version_names_the_git_revision_it_was_built_from() {
    let output = std::process::Command::new(BIN).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(text, format!("trailwarden {} ({revision})", env!("CARGO_PKG_VERSION")));
}

#[test]
fn completions_and_manual_pages_come_from_the_command_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let output = std::process::Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{shell}");
        for word in ["restore", "prune", "replay", "db"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let refused = std::process::Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "an unknown shell is a usage error");
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(BIN)
        .arg("man")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let page = std::fs::read_to_string(dir.path().join("trailwarden-store-prune.1")).unwrap();
    assert!(page.contains(".TH") && page.contains("retention"), "{page}");
    assert!(dir.path().join("trailwarden.1").is_file());
}

#[test]
fn no_color_keeps_log_lines_plain_on_a_terminal() {
    // `script` gives the daemon a terminal for stderr.
    let dir = tempfile::tempdir().unwrap();
    let escapes = |no_color: bool| {
        let db = dir.path().join(format!("nc-{no_color}.db"));
        let mut command = std::process::Command::new("script");
        command
            .args(["-qec", &format!("{BIN} run --once --db {}", db.display()), "/dev/null"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("TRAILWARDEN__API__BIND", "127.0.0.1:0")
            .env("TRAILWARDEN_LOG", "info")
            .env_remove("NO_COLOR");
        if no_color {
            command.env("NO_COLOR", "1");
        }
        let output = command.output().expect("script (util-linux)");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
        String::from_utf8_lossy(&output.stdout).matches("\u{1b}[").count()
    };
    assert!(escapes(false) > 0, "coloured on a terminal");
    assert_eq!(escapes(true), 0, "plain with NO_COLOR");
}

#[test]
fn a_long_replay_shows_progress_on_a_terminal_and_only_its_summary_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    let generated = std::process::Command::new(BIN)
        .args(["generate", "--events", "30000", "--out"])
        .arg(&corpus)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(generated.status.success());
    let replay = format!("{BIN} replay --format jsonl {} > /dev/null", corpus.display());
    // On a terminal (`script`): a status line redrawn in place, erased before the summary.
    let output = std::process::Command::new("script")
        .args(["-qec", &replay, "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("script (util-linux)");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    assert!(
        shown.contains("\r\u{1b}[2Kreplay: ") && shown.contains("events/s"),
        "{shown:?}"
    );
    assert!(
        shown.contains("replay: 30000 records"),
        "the summary follows: {shown:?}"
    );
    // Piped: the summary alone.
    let output = std::process::Command::new("sh")
        .args(["-c", &replay])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        !stderr.contains('\r') && stderr.starts_with("replay: 30000 records"),
        "{stderr:?}"
    );
    // A backfill on a terminal: the same kind of status line, then its summary.
    let db = dir.path().join("backfill.db");
    let backfill = format!("{BIN} backfill --db {} {}", db.display(), corpus.display());
    let output = std::process::Command::new("script")
        .args(["-qec", &backfill, "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TRAILWARDEN__API__BIND", "127.0.0.1:0")
        .output()
        .expect("script (util-linux)");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("\r\u{1b}[2Kbackfill: "), "{shown:?}");
    assert!(shown.contains("backfill: 30000 records"), "{shown:?}");
}

#[test]
fn json_logs_are_json_on_every_line_with_one_shape_and_snake_case_fields() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("json.db");
    let output = std::process::Command::new(BIN)
        .args(["run", "--once", "--db"])
        .arg(&db)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TRAILWARDEN__LOG__FORMAT", "json")
        .env("TRAILWARDEN_LOG", "debug")
        .env("TRAILWARDEN__API__BIND", "127.0.0.1:0")
        .env("TRAILWARDEN__STORE__BACKUP__DIR", "")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut lines = 0;
    let mut names = std::collections::BTreeSet::new();
    for line in stderr.lines().filter(|line| !line.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        let keys: Vec<&str> = entry.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["fields", "level", "target", "timestamp"], "{line}");
        let fields = entry["fields"].as_object().unwrap();
        assert!(fields["message"].is_string(), "{line}");
        names.extend(fields.keys().cloned());
        lines += 1;
    }
    assert!(lines > 20, "{stderr}");
    // One spelling per name: snake_case (the `log.*` fields come from crates logging through `log`).
    for name in &names {
        let plain = name.strip_prefix("log.").unwrap_or(name);
        assert!(
            plain
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'),
            "field {name:?} in {names:?}"
        );
    }
    for (spelling, canonical) in [("file", "path"), ("filename", "path"), ("err", "error"), ("e", "error")] {
        assert!(
            !names.contains(spelling),
            "{spelling:?} where the logs say {canonical:?}: {names:?}"
        );
    }
}
