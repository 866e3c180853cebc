//! `allowlist add | list | remove | report`: known-good patterns counted
//! instead of alarmed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use trailwarden::config::Settings;
use trailwarden::error::AppError;
use trailwarden::service;
use trailwarden::terminal::{Column, Table, show};

use super::{Format, print_json_rows};

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum AllowlistCommand {
    /// Add a policy: every field given must match (absent = any); at least one is required.
    ///
    /// A rule match whose event matches an active policy is counted on the policy (hit count,
    /// last hit) instead of raising or updating an alarm. The running daemon picks the policy
    /// up at its next batch. Expiry is by the wall clock.
    Add {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Prefill from this alarm: its rule, its access key and, when all its calls came from
        /// one IP, that IP. Fields given explicitly override.
        #[arg(long, value_name = "ALARM_ID")]
        from_alarm: Option<i64>,
        /// Access key (exact).
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Source IP or CIDR.
        #[arg(long, value_name = "IP|CIDR")]
        ip: Option<String>,
        /// API as service.action, glob, case-insensitive (`cam.*`, `*.Describe*`).
        #[arg(long, value_name = "GLOB")]
        api: Option<String>,
        /// Operation id, glob (`iam.access_key.*`).
        #[arg(long, value_name = "GLOB")]
        operation: Option<String>,
        /// Call method: console, api, system or other.
        #[arg(long, value_name = "METHOD")]
        method: Option<String>,
        /// Response / error code (case-insensitive).
        #[arg(long, value_name = "CODE")]
        error_code: Option<String>,
        /// Rule id.
        #[arg(long, value_name = "ID")]
        rule: Option<String>,
        /// Who adds it: recorded with the policy, in the change log and in notifications
        /// (default: the Unix user; the channel always records the Unix user).
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        /// Why the pattern is allowed.
        #[arg(long)]
        reason: String,
        /// Store a broad policy (one that matches every API or operation, covers a whole
        /// address space, or narrows nothing beyond a rule or call method): an explicit,
        /// recorded admin override.
        #[arg(long)]
        allow_broad: bool,
        /// When the policy stops matching: RFC 3339, YYYY-MM-DD[ HH:MM:SS] (UTC), or a
        /// duration from now (`30d`).
        #[arg(long, value_name = "TIME|DURATION")]
        expires: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List policies with their hit counts (keys masked).
    List {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Remove a policy (recorded in the change log, notified).
    Remove {
        id: i64,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Who removes it (default: the Unix user).
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
    },
    /// Change when a policy stops matching (recorded in the change log, sealed, notified).
    SetExpiry {
        id: i64,
        /// RFC 3339, YYYY-MM-DD[ HH:MM:SS] (UTC), a duration from now (`30d`), or `never`.
        #[arg(value_name = "TIME|DURATION|never")]
        expires: String,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Who changes it (default: the Unix user).
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
    },
    /// Policies never hit, and expired policies: candidates for removal.
    Report {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

pub fn allowlist_command(settings: &Settings, command: AllowlistCommand) -> Result<ExitCode> {
    match command {
        AllowlistCommand::Add {
            db,
            from_alarm,
            key,
            ip,
            api,
            operation,
            method,
            error_code,
            rule,
            actor,
            reason,
            allow_broad,
            expires,
            format,
        } => {
            let actor = trailwarden::alarm::changes::Actor::cli(actor.as_deref()).map_err(AppError::from)?;
            let mut store = service::open_store(settings, db.as_deref())?;
            let request = service::AllowlistAdd {
                matches: trailwarden::alarm::allowlist::PolicyMatch {
                    access_key: key,
                    source_ip: ip,
                    api,
                    operation,
                    call_method: method,
                    error_code,
                    rule_id: rule,
                },
                from_alarm,
                reason,
                expires,
                allow_broad,
            };
            let (policy, warning) = service::allowlist_add(&mut store, request, &actor)?;
            if let Some(broad) = &policy.broad {
                eprintln!(
                    "warning: broad policy stored by override ({broad}); recorded as approved by {}",
                    actor.name
                );
            }
            if let Some(warning) = warning {
                eprintln!("warning: {}", show(&warning));
            }
            let view = service::policy_view(policy, chrono::Utc::now());
            if format == Format::Table {
                println!("allowlist policy {} added", view.policy.id);
                print_policies(std::slice::from_ref(&view));
            } else {
                println!("{}", serde_json::to_string(&view)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        AllowlistCommand::List { db, format } => {
            let store = service::open_existing_store(settings, db.as_deref())?;
            let policies = service::allowlist_list(&store)?;
            if format == Format::Table {
                print_policies(&policies);
            } else {
                print_json_rows(&policies, format)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AllowlistCommand::Remove { id, db, actor } => {
            let actor = trailwarden::alarm::changes::Actor::cli(actor.as_deref()).map_err(AppError::from)?;
            let mut store = service::open_existing_store(settings, db.as_deref())?;
            let policy = service::allowlist_remove(&mut store, id, &actor)?;
            println!(
                "allowlist policy {id} removed by {} (it had suppressed {} matches, {} of high-level rules)",
                show(&actor.name),
                policy.hit_count,
                policy.high_hits
            );
            Ok(ExitCode::SUCCESS)
        }
        AllowlistCommand::SetExpiry { id, expires, db, actor } => {
            let actor = trailwarden::alarm::changes::Actor::cli(actor.as_deref()).map_err(AppError::from)?;
            let mut store = service::open_existing_store(settings, db.as_deref())?;
            let (policy, warning) = service::allowlist_set_expiry(&mut store, id, &expires, &actor)?;
            println!(
                "allowlist policy {id} now {} (changed by {})",
                match &policy.expires_at {
                    Some(at) => format!("expires {at}"),
                    None => "never expires".to_string(),
                },
                show(&actor.name)
            );
            if let Some(warning) = warning {
                eprintln!("warning: {warning}");
            }
            Ok(ExitCode::SUCCESS)
        }
        AllowlistCommand::Report { db, format } => {
            let store = service::open_existing_store(settings, db.as_deref())?;
            let report = service::allowlist_report(&store)?;
            if format != Format::Table {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("never hit ({}):", report.never_hit.len());
            print_policies(&report.never_hit);
            println!("\nexpired ({}):", report.expired.len());
            print_policies(&report.expired);
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn print_policies(policies: &[service::PolicyView]) {
    let mut table = Table::new(vec![
        Column::right("ID", 10),
        Column::left("STATE", 14),
        Column::left("KEY", 24),
        Column::left("IP", 43),
        Column::left("API", 32),
        Column::left("OPERATION", 32),
        Column::left("METHOD", 7),
        Column::left("ERROR", 24),
        Column::left("RULE", 34),
        Column::right("HITS", 10),
        Column::right("HIGH", 10),
        Column::left("LAST HIT", 24),
        Column::left("EXPIRES", 24),
        Column::left("BY", 24),
        Column::left("REASON", 0),
    ]);
    for view in policies {
        let policy = &view.policy;
        let field = |value: &Option<String>| value.clone().unwrap_or_else(|| "*".into());
        let state = if policy.broad.is_some() {
            format!("{} BROAD", view.state)
        } else {
            view.state.to_string()
        };
        table.row(vec![
            policy.id.to_string(),
            state,
            field(&policy.matches.access_key),
            field(&policy.matches.source_ip),
            field(&policy.matches.api),
            field(&policy.matches.operation),
            field(&policy.matches.call_method),
            field(&policy.matches.error_code),
            field(&policy.matches.rule_id),
            policy.hit_count.to_string(),
            policy.high_hits.to_string(),
            policy.last_hit.clone().unwrap_or_else(|| "-".into()),
            policy.expires_at.clone().unwrap_or_else(|| "never".into()),
            policy.created_by.clone(),
            policy.reason.clone(),
        ]);
    }
    print!("{}", table.render());
}
