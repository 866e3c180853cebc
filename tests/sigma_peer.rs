//! SigmaHQ's 57 CloudTrail rules, loaded by trailwarden (`rules.sigma_dirs`),
//! match exactly the (rule, event) pairs the peer engine rsigma 0.26 matches,
//! on the Panther CloudTrail corpus and on the generator's AWS records.
//!
//! Needs rsigma: `scripts/test` installs it (`scripts/install-rsigma`); set
//! `RSIGMA` to use another binary.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

fn rsigma_binary() -> PathBuf {
    if let Ok(path) = std::env::var("RSIGMA") {
        return PathBuf::from(path);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cached = PathBuf::from(home).join(".cache/trailwarden-bench/rsigma/bin/rsigma");
    if cached.exists() {
        return cached;
    }
    panic!("rsigma is not installed: run scripts/test (it installs it) or set RSIGMA=/path/to/rsigma");
}

/// Each record of a JSON-lines file, in a canonical text (sorted keys), with its line numbers.
fn lines_by_record(corpus: &Path) -> (Vec<String>, HashMap<String, Vec<usize>>) {
    let text = std::fs::read_to_string(corpus).expect("the corpus");
    let mut canonical = Vec::new();
    let mut lines: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let key = serde_json::from_str::<Value>(line).map_or_else(|_| line.to_string(), |value| value.to_string());
        lines.entry(key.clone()).or_default().push(index + 1);
        canonical.push(key);
    }
    (canonical, lines)
}

/// (rule id, the lines holding the matched record) → how many matches.
type Matches = BTreeMap<(String, Vec<usize>), usize>;

fn rsigma_matches(corpus: &Path) -> Matches {
    let output = Command::new(rsigma_binary())
        .args([
            "engine",
            "eval",
            "--quiet",
            "--include-event",
            "--output-format",
            "ndjson",
            "-r",
        ])
        .arg(shared().join("peers/sigma-cloudtrail"))
        .arg("-e")
        .arg(format!("@{}", corpus.display()))
        .output()
        .expect("rsigma runs");
    assert!(
        output.status.success(),
        "rsigma: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, lines) = lines_by_record(corpus);
    let mut matches = Matches::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(found) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let rule = found["rule_id"].as_str().expect("a rule id").to_string();
        let record = found["event"].to_string();
        let at = lines
            .get(&record)
            .cloned()
            .unwrap_or_else(|| panic!("rsigma's event is not in the corpus: {record}"));
        *matches.entry((rule, at)).or_default() += 1;
    }
    matches
}

fn trailwarden_matches(corpus: &Path, work: &Path) -> Matches {
    let config = work.join("sigma.toml");
    std::fs::write(
        &config,
        format!(
            "[rules]\ndir = \"{}\"\nsigma_dirs = [\"{}\"]\n",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules").display(),
            shared().join("peers/sigma-cloudtrail").display()
        ),
    )
    .expect("config written");
    let output = Command::new(env!("CARGO_BIN_EXE_trailwarden"))
        .arg("--config")
        .arg(&config)
        .args(["replay", "--format", "jsonl"])
        .arg(corpus)
        .output()
        .expect("trailwarden runs");
    assert!(
        output.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sigma_ids: Vec<String> = std::fs::read_dir(shared().join("peers/sigma-cloudtrail"))
        .expect("the Sigma rules")
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("id: ").map(|id| id.trim().to_string()))
        })
        .collect();
    assert_eq!(sigma_ids.len(), 57, "SigmaHQ's 57 CloudTrail rules");
    let (canonical, lines) = lines_by_record(corpus);
    let mut matches = Matches::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let found: Value = serde_json::from_str(line).expect("a match line");
        let rule = found["rule"].as_str().expect("a rule id").to_string();
        if !sigma_ids.contains(&rule) {
            continue;
        }
        let origin = found["origin"].as_str().expect("an origin");
        let number: usize = origin
            .rsplit(':')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("file:line");
        let at = lines[&canonical[number - 1]].clone();
        *matches.entry((rule, at)).or_default() += 1;
    }
    matches
}

fn assert_same(corpus: &Path, work: &Path) {
    let (peer, ours) = (rsigma_matches(corpus), trailwarden_matches(corpus, work));
    let differences: Vec<String> = peer
        .keys()
        .chain(ours.keys())
        .filter(|key| peer.get(*key) != ours.get(*key))
        .take(10)
        .map(|key| format!("{key:?}: rsigma {:?}, trailwarden {:?}", peer.get(key), ours.get(key)))
        .collect();
    assert!(differences.is_empty(), "{}: {differences:#?}", corpus.display());
    assert!(peer.values().sum::<usize>() > 100, "the corpus exercises the rules");
    eprintln!(
        "{}: {} matches, the same in both engines",
        corpus.display(),
        peer.values().sum::<usize>()
    );
}

#[test]
fn sigmahq_cloudtrail_rules_match_what_rsigma_matches_on_the_panther_corpus() {
    let work = tempfile::tempdir().expect("a temp dir");
    assert_same(&shared().join("datasets/cloudtrail-panther-tests.jsonl"), work.path());
}

#[test]
fn sigmahq_cloudtrail_rules_match_what_rsigma_matches_on_generated_aws_records() {
    let work = tempfile::tempdir().expect("a temp dir");
    let all = work.path().join("generated.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_trailwarden"))
        .args(["generate", "--events", "12000", "--out"])
        .arg(&all)
        .status()
        .expect("generate runs");
    assert!(status.success());
    let aws: String = std::fs::read_to_string(&all)
        .expect("the corpus")
        .lines()
        .filter(|line| line.contains("\"awsRegion\""))
        .map(|line| format!("{line}\n"))
        .collect();
    let corpus = work.path().join("aws.jsonl");
    std::fs::write(&corpus, aws).expect("written");
    assert_same(&corpus, work.path());
}
