//! `alarms list | show | set-status`: the alarm list of seeds/003, one
//! alarm's details, and the triage workflow.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};

use trailwarden::alarm::store::AlarmFilter;
use trailwarden::alarm::workflow::Status;
use trailwarden::config::Settings;
use trailwarden::rules::Level;
use trailwarden::service;
use trailwarden::terminal::{self, Column, Table, show};

use super::{Format, parse_time};

#[derive(Subcommand)]
pub enum AlarmsCommand {
    /// List alarms, most recent first.
    List {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// unprocessed, processed or ignored.
        #[arg(long)]
        status: Option<String>,
        /// Only this level and above: info, low, medium, high.
        #[arg(long)]
        level: Option<String>,
        /// Only this rule id.
        #[arg(long)]
        rule: Option<String>,
        /// Only this account (ID or name).
        #[arg(long)]
        account: Option<String>,
        /// Only alarms of this account identity: root (the main account) or sub_account.
        #[arg(long, value_parser = ["root", "sub_account", "unknown"])]
        identity: Option<String>,
        /// Only this access key: the full key, or its masked form as printed.
        #[arg(long)]
        key: Option<String>,
        /// Active since: RFC 3339 time, or an age like 24h, 7d.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Started before: RFC 3339 time, or an age like 1h.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Order: time (most recent first) or level (highest first).
        #[arg(long, value_enum, default_value_t = SortBy::Time)]
        sort: SortBy,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Mark an alarm processed or ignored, or reopen it (unprocessed); the
    /// change is recorded with actor, time and reason.
    SetStatus {
        id: i64,
        /// unprocessed, processed or ignored.
        status: String,
        #[arg(long)]
        actor: String,
        #[arg(long)]
        reason: String,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
    /// Show one alarm with its call records per source IP and its sample events.
    Show {
        id: i64,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    Time,
    Level,
}

pub fn alarms(settings: &Settings, command: AlarmsCommand) -> Result<ExitCode> {
    match command {
        AlarmsCommand::List {
            db,
            format,
            status,
            level,
            rule,
            account,
            identity,
            key,
            since,
            until,
            sort,
            limit,
        } => {
            let min_level = match level {
                Some(text) => Some(
                    Level::parse(&text).with_context(|| format!("--level {text}: use info, low, medium or high"))?,
                ),
                None => None,
            };
            if let Some(status) = &status
                && !["unprocessed", "processed", "ignored"].contains(&status.as_str())
            {
                anyhow::bail!("--status {status}: use unprocessed, processed or ignored");
            }
            let store = service::open_existing_store(settings, db.as_deref())?;
            let filter = AlarmFilter {
                status,
                min_level,
                rule,
                account,
                identity,
                access_key: key,
                since: since.as_deref().map(|text| parse_time("--since", text)).transpose()?,
                until: until.as_deref().map(|text| parse_time("--until", text)).transpose()?,
                sort: match sort {
                    SortBy::Time => trailwarden::alarm::store::AlarmSort::Time,
                    SortBy::Level => trailwarden::alarm::store::AlarmSort::Level,
                },
                limit,
                ..AlarmFilter::default()
            };
            let rows = service::list_alarms(&store, &filter)?;
            match format {
                Format::Table => {
                    let mut table = Table::new(vec![
                        Column::right("ID", 10),
                        Column::left("LEVEL", 6),
                        Column::left("STATUS", 11),
                        Column::left("RULE", 34),
                        Column::left("TITLE", 56),
                        Column::left("ACCOUNT", 34),
                        Column::right("COUNT", 10),
                        Column::left("FIRST SEEN", 24),
                        Column::left("LAST SEEN", 24),
                        Column::left("GROUP", 0),
                    ]);
                    for view in rows {
                        let row = &view.alarm;
                        table.row(vec![
                            row.id.to_string(),
                            row.level.clone(),
                            row.status.clone(),
                            row.rule.clone(),
                            row.title.clone(),
                            account_text(&row.identity),
                            row.count.to_string(),
                            row.first_seen.clone(),
                            row.last_seen.clone(),
                            row.group_key.clone(),
                        ]);
                    }
                    print!("{}", table.render());
                }
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Jsonl => {
                    for row in rows {
                        println!("{}", serde_json::to_string(&row)?);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AlarmsCommand::Show { id, db, format } => {
            let store = service::open_existing_store(settings, db.as_deref())?;
            let detail = service::show_alarm(&store, id)?;
            if format != Format::Table {
                println!("{}", serde_json::to_string_pretty(&detail)?);
                return Ok(ExitCode::SUCCESS);
            }
            // Every text below comes from events, rule files or triage: shown escaped.
            let alarm = &detail.alarm.alarm;
            let identity = &alarm.identity;
            println!("alarm {}: {} [{}]", alarm.id, show(&alarm.title), show(&alarm.level));
            println!(
                "  rule:        {} (version {})",
                show(&alarm.rule),
                show(&alarm.rule_hash)
            );
            println!("  status:      {}", show(&alarm.status));
            println!(
                "  account:     {} [{}]",
                show(&account_text(identity)),
                show(&identity.account_identity)
            );
            println!(
                "  principal:   {} [{}] {}",
                show(identity.principal_name.as_deref().unwrap_or("-")),
                show(&identity.principal_kind),
                show(identity.principal_arn.as_deref().unwrap_or(""))
            );
            println!(
                "  access key:  {} / {}",
                show(identity.access_key_id.as_deref().unwrap_or("-")),
                show(detail.alarm.access_key_remark.as_deref().unwrap_or("-"))
            );
            println!(
                "  seen:        {} .. {} ({})",
                show(&alarm.first_seen),
                show(&alarm.last_seen),
                terminal::count_of(alarm.count, "time", "times")
            );
            println!("  group key:   {}", show(&alarm.group_key));
            println!("  last output: {}", show(&alarm.output));
            println!("  calls:");
            let mut calls = Table::new(vec![
                Column::left("SOURCE IP (ASSET)", 48),
                Column::left("IP TYPE", 34),
                Column::left("REGION", 28),
                Column::left("REMARK", 20),
                Column::left("METHOD", 8),
                Column::left("API", 48),
                Column::right("OK", 10),
                Column::right("FAIL", 10),
                Column::left("FIRST CALL", 24),
                Column::left("LAST CALL", 0),
            ])
            .indented("    ");
            for view in &detail.calls {
                let call = &view.call;
                let mut address = if call.source_ip.is_empty() {
                    "-".to_string()
                } else {
                    call.source_ip.clone()
                };
                if let Some(asset) = &view.ip.asset {
                    address.push_str(&format!(" ({asset})"));
                }
                calls.row(vec![
                    address,
                    view.ip.ip_type_label.clone(),
                    view.ip.region.label.clone(),
                    view.ip.ip_remark.clone().unwrap_or_else(|| "-".into()),
                    call.call_method.clone(),
                    format!("{}.{}", call.service, call.action),
                    call.success_count.to_string(),
                    call.failure_count.to_string(),
                    call.first_call.clone(),
                    call.last_call.clone(),
                ]);
            }
            print!("{}", calls.render());
            print_investigation(&detail);
            println!("  samples: {} kept (see --format json)", detail.samples.len());
            if detail.history.is_empty() {
                println!("  history: none (never triaged)");
            } else {
                println!("  history:");
                for change in &detail.history {
                    println!(
                        "    {}  {} → {}  by {}: {}",
                        show(&change.at),
                        show(&change.from_status),
                        show(&change.to_status),
                        show(&change.actor),
                        show(&change.reason)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AlarmsCommand::SetStatus {
            id,
            status,
            actor,
            reason,
            db,
        } => {
            let to = Status::parse(&status)
                .with_context(|| format!("status {status:?}: use unprocessed, processed or ignored"))?;
            let mut store = service::open_existing_store(settings, db.as_deref())?;
            let change = store.set_status(id, to, &actor, &reason)?;
            println!(
                "alarm {id}: {} → {} by {} at {}",
                show(&change.from_status),
                show(&change.to_status),
                show(&change.actor),
                show(&change.at)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// "aws 493817265041 (prod)": the cloud, the account id and, when known, its name.
pub fn account_text(identity: &trailwarden::alarm::store::AlarmIdentity) -> String {
    let mut text = format!(
        "{} {}",
        identity.provider,
        identity
            .account_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .unwrap_or("-")
    );
    if let Some(name) = identity.account_name.as_deref().filter(|name| !name.is_empty()) {
        text.push_str(&format!(" ({name})"));
    }
    text
}

/// AK association risk and permission convergence, under an alarm's calls.
fn print_investigation(detail: &trailwarden::alarm::view::AlarmDetailView) {
    if let Some(association) = &detail.key_association {
        println!(
            "  key association: {} other alarm{} of this key; first used from {} address{} in account{} {}",
            association.other_alarms.len(),
            if association.other_alarms.len() == 1 { "" } else { "s" },
            association.source_ips.len(),
            if association.source_ips.len() == 1 { "" } else { "es" },
            if association.accounts.len() == 1 { "" } else { "s" },
            show(&association.accounts.join(", ")),
        );
        for alarm in &association.other_alarms {
            println!(
                "    #{} {} {} {} ×{} last {}",
                alarm.id,
                alarm.level,
                show(&alarm.rule),
                alarm.status,
                alarm.count,
                alarm.last_seen
            );
        }
    }
    if let Some(permissions) = &detail.permissions {
        println!(
            "  permissions (last {} days): {} action{} used, {} refused",
            permissions.window_days,
            permissions.used.len(),
            if permissions.used.len() == 1 { "" } else { "s" },
            permissions.denied.len()
        );
        for denied in &permissions.denied {
            println!(
                "    refused {}.{} ({}) ×{}",
                show(&denied.service),
                show(&denied.action),
                show(&denied.error_code),
                denied.calls
            );
        }
        match &permissions.least_privilege_policy {
            Some(policy) => println!("    least-privilege policy: {}", show(&policy.to_string())),
            None => println!("    least-privilege policy: none ({})", permissions.note),
        }
    }
}
