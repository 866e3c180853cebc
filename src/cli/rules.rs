//! `rules validate | test | cost | list`: the rule files, checked and run like a
//! test suite, and timed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use trailwarden::config::Settings;
use trailwarden::error::AppError;
use trailwarden::ruleset;
use trailwarden::terminal::{self, Column, Table, show};

use super::Format;

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Check rule files and report every problem with file:line:col (including failing
    /// embedded tests); non-zero exit on any.
    Validate {
        /// Rules directory (default: `rules.dir`).
        path: Option<PathBuf>,
    },
    /// Run the rules' embedded tests and report like a test runner.
    Test {
        /// Rules directory (default: `rules.dir`).
        path: Option<PathBuf>,
        /// Only rules whose id contains this text.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Time each rule on the records of files or directories (read and normalized first,
    /// then evaluated once in event-time order with engine state): most expensive first.
    Cost {
        /// Files or directories of records (held in memory: a sample of a few hundred
        /// thousand records is plenty).
        #[arg(required = true)]
        paths: Vec<String>,
        /// Rules directory (default: `rules.dir`).
        #[arg(long)]
        rules: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List rules: id, level, clouds covered, enabled, tags.
    List {
        path: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

pub fn rules(settings: &Settings, command: RulesCommand) -> Result<ExitCode> {
    match command {
        RulesCommand::Validate { path } => {
            let dir = path.unwrap_or_else(|| settings.rules.dir.clone());
            match ruleset::check_rule_set(settings, Some(&dir)) {
                Ok(rules) => {
                    let (indexed, always) = rules.index_summary();
                    println!(
                        "{}: {} rules ({} indexed by operation/action, {} checked on every event), {} operations, version {}: OK",
                        show(&dir.display().to_string()),
                        rules.rules.len(),
                        indexed,
                        always,
                        rules.catalog.len(),
                        rules.version
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(AppError::Rules { diagnostics, .. }) => {
                    let count = diagnostics.len();
                    for diagnostic in diagnostics.sorted() {
                        println!("{}", terminal::escape_lines(&diagnostic.to_string()));
                    }
                    println!("{count} problem{}", if count == 1 { "" } else { "s" });
                    Ok(ExitCode::from(1))
                }
                Err(other) => Err(other.into()),
            }
        }
        RulesCommand::Test { path, filter } => {
            let outcomes = ruleset::test_rules(settings, path.as_deref(), filter.as_deref())?;
            let mut passed = 0;
            let mut failed = Vec::new();
            for outcome in &outcomes {
                if outcome.passed {
                    passed += 1;
                    println!("test {} :: {} ... ok", show(&outcome.rule), show(&outcome.name));
                } else {
                    println!("test {} :: {} ... FAILED", show(&outcome.rule), show(&outcome.name));
                    failed.push(outcome);
                }
            }
            if !failed.is_empty() {
                println!("\nfailures:");
                for outcome in &failed {
                    println!(
                        "\n  {} :: {} ({}:{})\n    {}",
                        show(&outcome.rule),
                        show(&outcome.name),
                        show(&outcome.file),
                        outcome.loc,
                        terminal::escape_lines(&outcome.detail)
                    );
                }
            }
            let rules_with_tests: std::collections::BTreeSet<&str> =
                outcomes.iter().map(|outcome| outcome.rule.as_str()).collect();
            println!(
                "\ntest result: {}. {passed} passed; {} failed; {} rules tested",
                if failed.is_empty() { "ok" } else { "FAILED" },
                failed.len(),
                rules_with_tests.len()
            );
            Ok(if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        RulesCommand::Cost { paths, rules, format } => {
            let (report, malformed) = trailwarden::replay::rule_costs(settings, rules.as_deref(), &paths)?;
            if format != Format::Table {
                println!("{}", serde_json::to_string(&report)?);
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(vec![
                Column::left("RULE", 40),
                Column::right("EVALUATED", 10),
                Column::right("MATCHED", 9),
                Column::right("TOTAL MS", 9),
                Column::right("NS/EVAL", 8),
                Column::right("NS/EVENT", 9),
                Column::right("SHARE", 6),
            ]);
            let events = report.events.max(1) as f64;
            let all = report.nanos.max(1) as f64;
            for cost in &report.rules {
                table.row(vec![
                    cost.rule.clone(),
                    cost.evaluations.to_string(),
                    cost.matches.to_string(),
                    format!("{:.1}", cost.nanos as f64 / 1e6),
                    format!("{:.0}", cost.nanos as f64 / cost.evaluations.max(1) as f64),
                    format!("{:.1}", cost.nanos as f64 / events),
                    format!("{:.1}%", cost.nanos as f64 * 100.0 / all),
                ]);
            }
            print!("{}", table.render());
            println!(
                "{} events ({} unreadable records skipped): {:.1} ms in rules, {:.0} ns per event; {:.0} ns of clock reads taken off each evaluation",
                report.events,
                malformed,
                report.nanos as f64 / 1e6,
                report.nanos as f64 / events,
                report.clock_nanos
            );
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::List { path, format } => {
            let rules = ruleset::load_rule_set(settings, path.as_deref())?;
            if format != Format::Table {
                for rule in &rules.rules {
                    let line = serde_json::json!({
                                "id": rule.id,
                                "title": rule.title,
                                "level": rule.level,
                                "clouds": rule.clouds,
                                "enabled": rule.enabled,
                                "tags": rule.tags,
                                "mitre": rule.mitre,
                    "references": rule.references,
                    "sigma": rule.sigma,
                                "description": rule.description,
                                "rationale": rule.rationale,
                                "remediation": rule.remediation,
                                "false_positives": rule.false_positives,
                                "escalate": trailwarden::rules::escalate::to_json(&rule.escalate),
                                "hash": rule.hash,
                                "file": rule.file.as_ref(),
                            });
                    println!("{line}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(vec![
                Column::left("ID", 40),
                Column::left("LEVEL", 6),
                Column::left("CLOUDS", 22),
                Column::left("ENABLED", 7),
                Column::left("TAGS", 0),
            ]);
            for rule in &rules.rules {
                let clouds: Vec<&str> = rule.clouds.iter().map(|cloud| cloud.as_str()).collect();
                table.row(vec![
                    rule.id.clone(),
                    rule.level.as_str().to_string(),
                    clouds.join(","),
                    if rule.enabled { "yes" } else { "no" }.to_string(),
                    rule.tags.join(","),
                ]);
            }
            print!("{}", table.render());
            Ok(ExitCode::SUCCESS)
        }
    }
}
