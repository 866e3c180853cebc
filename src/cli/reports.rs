//! `activity` and `traces`: the god view over a time range, and key-operation
//! traces with their raw records.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};

use trailwarden::alarm::rollup::{ActivityQuery, ActivityReport, Trace, TraceFilter};
use trailwarden::config::Settings;
use trailwarden::event::model::OutcomeResult;
use trailwarden::service;
use trailwarden::terminal::{Column, Table};

use super::dash;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ActivityFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TraceFormat {
    Table,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TraceStatus {
    Success,
    Failure,
}

#[derive(Args)]
pub struct ActivityArgs {
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Start of the range (inclusive).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// End of the range (exclusive).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Rows per list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: u32,
    #[arg(long, value_enum, default_value_t = ActivityFormat::Table)]
    pub format: ActivityFormat,
}

pub fn activity(settings: &Settings, args: ActivityArgs) -> Result<ExitCode> {
    let ActivityArgs {
        db,
        since,
        until,
        top,
        format,
    } = args;
    let now = chrono::Utc::now();
    let query = ActivityQuery {
        since: since
            .map(|text| service::parse_time_arg("--since", &text, now))
            .transpose()?,
        until: until
            .map(|text| service::parse_time_arg("--until", &text, now))
            .transpose()?,
        top: top.max(1),
    };
    let store = service::open_existing_store(settings, db.as_deref())?;
    let mut report = service::activity_report(&store, &query)?;
    // Keys leave the store masked.
    service::mask_activity_report(&mut report);
    match format {
        ActivityFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ActivityFormat::Table => print_activity(&report),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_activity(report: &ActivityReport) {
    println!(
        "activity {} .. {}: {} events, {} failed",
        report.since.as_deref().unwrap_or("(start)"),
        report.until.as_deref().unwrap_or("(end)"),
        report.events,
        report.failures
    );
    println!("\nbusiest principals");
    let mut table = Table::new(vec![
        Column::left("CLOUD", 8),
        Column::left("ACCOUNT", 34),
        Column::left("PRINCIPAL", 48),
        Column::right("EVENTS", 12),
        Column::right("FAILED", 12),
    ])
    .indented("  ");
    for row in &report.busiest_principals {
        table.row(vec![
            row.provider.clone(),
            dash(&row.account_id).to_string(),
            row.principal.clone(),
            row.events.to_string(),
            row.failures.to_string(),
        ]);
    }
    print!("{}", table.render());
    println!("\nbusiest source IPs");
    let mut table = Table::new(vec![
        Column::left("SOURCE IP", 48),
        Column::right("EVENTS", 12),
        Column::right("FAILED", 12),
        Column::right("PRINCIPALS", 12),
        Column::left("REGION", 0),
    ])
    .indented("  ");
    for row in &report.busiest_source_ips {
        table.row(vec![
            row.source_ip.clone(),
            row.events.to_string(),
            row.failures.to_string(),
            row.principals.to_string(),
            row.region.clone(),
        ]);
    }
    print!("{}", table.render());
    println!("\nbusiest APIs");
    let mut table = Table::new(vec![
        Column::left("CLOUD", 8),
        Column::left("SERVICE.ACTION", 48),
        Column::right("EVENTS", 12),
        Column::right("FAILED", 12),
        Column::right("PRINCIPALS", 12),
    ])
    .indented("  ");
    for row in &report.busiest_apis {
        table.row(vec![
            row.provider.clone(),
            format!("{}.{}", row.service, row.action),
            row.events.to_string(),
            row.failures.to_string(),
            row.principals.to_string(),
        ]);
    }
    print!("{}", table.render());
    println!("\nfailure rates by account");
    let mut table = Table::new(vec![
        Column::left("CLOUD", 8),
        Column::left("ACCOUNT", 34),
        Column::right("EVENTS", 12),
        Column::right("FAILED", 12),
        Column::right("RATE", 7),
    ])
    .indented("  ");
    for row in &report.failure_rates {
        table.row(vec![
            row.provider.clone(),
            dash(&row.account_id).to_string(),
            row.events.to_string(),
            row.failures.to_string(),
            format!("{:.1}%", row.failure_rate * 100.0),
        ]);
    }
    print!("{}", table.render());
    println!(
        "\nnew (access key, source IP) pairs: {}{}",
        report.new_key_ips_total,
        if report.new_key_ips_total > report.new_key_ips.len() as u64 {
            format!(" (first {} shown)", report.new_key_ips.len())
        } else {
            String::new()
        }
    );
    let mut table = Table::new(vec![
        Column::left("FIRST SEEN", 24),
        Column::left("ACCESS KEY", 24),
        Column::left("SOURCE IP", 48),
        Column::left("CLOUD", 8),
        Column::left("PRINCIPAL", 0),
    ])
    .indented("  ");
    for pair in &report.new_key_ips {
        table.row(vec![
            pair.first_seen.clone(),
            pair.access_key_id.clone(),
            pair.source_ip.clone(),
            pair.provider.clone(),
            pair.principal.clone(),
        ]);
    }
    print!("{}", table.render());
}

#[derive(Args)]
pub struct TracesArgs {
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Call method (console, api, system, other) or the cloud's trace type
    /// (ConsoleAction, ApiCall, AwsConsoleAction …).
    #[arg(long, value_name = "M")]
    pub call_method: Option<String>,
    /// Service: ecs, cvm, iam, cam, ec2 …
    #[arg(long, value_name = "S")]
    pub service: Option<String>,
    #[arg(long, value_name = "T")]
    pub resource_type: Option<String>,
    /// Operator name or principal id.
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    #[arg(long, value_enum)]
    pub status: Option<TraceStatus>,
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: u32,
    #[arg(long, value_enum, default_value_t = TraceFormat::Table)]
    pub format: TraceFormat,
}

pub fn traces(settings: &Settings, args: TracesArgs) -> Result<ExitCode> {
    let TracesArgs {
        db,
        call_method,
        service,
        resource_type,
        operator,
        status,
        since,
        until,
        limit,
        format,
    } = args;
    let now = chrono::Utc::now();
    let filter = TraceFilter {
        call_method,
        service,
        resource_type,
        operator,
        status: status.map(|status| match status {
            TraceStatus::Success => OutcomeResult::Success,
            TraceStatus::Failure => OutcomeResult::Failure,
        }),
        since: since
            .map(|text| service::parse_time_arg("--since", &text, now))
            .transpose()?,
        until: until
            .map(|text| service::parse_time_arg("--until", &text, now))
            .transpose()?,
        limit,
    };
    let store = service::open_existing_store(settings, db.as_deref())?;
    let mut traces = service::list_traces(&store, &filter)?;
    // Keys leave the store masked, in the trace and in its raw record.
    service::mask_traces(&mut traces);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = match format {
        TraceFormat::Jsonl => traces
            .iter()
            .try_for_each(|trace| writeln!(out, "{}", serde_json::to_string(trace).unwrap_or_default())),
        TraceFormat::Table => print_traces(&mut out, &traces),
    };
    match written.and_then(|_| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::from(error).context("writing stdout"))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Traces, one per line; operator, action and resource columns are as wide as
/// their longest value up to a limit, longer values end with `…`.
pub fn print_traces(out: &mut dyn Write, traces: &[Trace]) -> std::io::Result<()> {
    let mut table = Table::new(vec![
        Column::left("TIME", 24),
        Column::left("CLOUD", 7),
        Column::left("OPERATOR", 32),
        Column::left("METHOD", 8),
        Column::left("TRACE TYPE", 20),
        Column::left("ACTION", 40),
        Column::left("RESOURCE TYPE", 24),
        Column::left("STATUS", 7),
        Column::left("SOURCE IP", 0),
    ]);
    for trace in traces {
        table.row(vec![
            trace.time.clone(),
            trace.provider.clone(),
            trace.operator.clone(),
            trace.call_method.clone(),
            trace.trace_type.clone().unwrap_or_else(|| "-".into()),
            format!("{}.{}", trace.service, trace.action),
            trace.resource_type.clone().unwrap_or_else(|| "-".into()),
            trace.status.clone(),
            trace
                .source_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    table.write_to(out)
}
