//! `trailwarden events`: search the event store — what a key, principal or
//! address did — newest first, a page at a time.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};

use trailwarden::alarm::events::{Cursor, EventFilter, EventPage, IpMatch};
use trailwarden::config::Settings;
use trailwarden::event::model::{OutcomeResult, Provider};
use trailwarden::service;
use trailwarden::terminal::{Column, Table};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EventsFormat {
    Table,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Cloud {
    Huawei,
    Tencent,
    Aws,
}

#[derive(Args)]
pub struct EventsArgs {
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Access key id.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Principal name, id or ARN.
    #[arg(long, value_name = "P")]
    pub principal: Option<String>,
    /// Source address, or a network (10.1.2.0/24).
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// Account id or name.
    #[arg(long, value_name = "A")]
    pub account: Option<String>,
    /// API / event name (RunInstances, DeleteBucket …).
    #[arg(long, value_name = "NAME")]
    pub action: Option<String>,
    /// Service: ec2, cvm, ecs, iam, cam …
    #[arg(long, value_name = "S")]
    pub service: Option<String>,
    /// One of the event's resource names (whole name or ARN).
    #[arg(long, value_name = "R")]
    pub resource: Option<String>,
    /// Event id or request id.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    #[arg(long, value_enum)]
    pub outcome: Option<Outcome>,
    #[arg(long, value_enum)]
    pub cloud: Option<Cloud>,
    /// The events of an alarm: its key (else principal), cloud and account, from its
    /// first to its last event. Other filters narrow it (--ip and --action for a call record).
    #[arg(long, value_name = "ID")]
    pub alarm: Option<i64>,
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Events per page (at most 1000).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: u32,
    /// Go on from a page's `next` cursor (printed after a page that has more).
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    #[arg(long, value_enum, default_value_t = EventsFormat::Table)]
    pub format: EventsFormat,
}

pub fn events(settings: &Settings, args: EventsArgs) -> Result<ExitCode> {
    let now = chrono::Utc::now();
    let time =
        |flag: &str, text: Option<String>| text.map(|text| service::parse_time_arg(flag, &text, now)).transpose();
    let filter = EventFilter {
        key: args.key,
        principal: args.principal,
        ip: args.ip.as_deref().map(IpMatch::parse),
        account: args.account,
        action: args.action,
        service: args.service,
        resource: args.resource,
        id: args.id,
        outcome: args.outcome.map(|outcome| match outcome {
            Outcome::Success => OutcomeResult::Success,
            Outcome::Failure => OutcomeResult::Failure,
        }),
        provider: args.cloud.map(|cloud| match cloud {
            Cloud::Huawei => Provider::Huawei,
            Cloud::Tencent => Provider::Tencent,
            Cloud::Aws => Provider::Aws,
        }),
        since: time("--since", args.since)?,
        until: time("--until", args.until)?,
        limit: args.limit,
        cursor: args.cursor.as_deref().map(str::parse::<Cursor>).transpose()?,
        max_blocks: 0,
    };
    let store = service::open_existing_store(settings, args.db.as_deref())?;
    let page = service::search_events(&store, filter, args.alarm)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = match args.format {
        EventsFormat::Jsonl => page
            .events
            .iter()
            .try_for_each(|event| writeln!(out, "{}", serde_json::to_string(event).unwrap_or_default())),
        EventsFormat::Table => print_events(&mut out, &page),
    };
    // The cursor goes to stderr, so JSON lines stay JSON lines.
    if let Some(next) = &page.next {
        eprintln!("more: --cursor {next}");
    }
    match written.and_then(|_| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::from(error).context("writing stdout"))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn print_events(out: &mut dyn Write, page: &EventPage) -> std::io::Result<()> {
    let mut table = Table::new(vec![
        Column::left("TIME", 24),
        Column::left("CLOUD", 7),
        Column::left("ACCOUNT", 14),
        Column::left("PRINCIPAL", 28),
        Column::left("KEY", 20),
        Column::left("SOURCE IP", 18),
        Column::left("ACTION", 40),
        Column::left("RESULT", 16),
        Column::left("REQUEST ID", 0),
    ]);
    let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    for event in &page.events {
        table.row(vec![
            event.time.clone(),
            event.provider.to_string(),
            dash(&event.account_id),
            event
                .principal_name
                .clone()
                .or_else(|| event.principal_id.clone())
                .unwrap_or_else(|| event.principal_kind.to_string()),
            dash(&event.access_key_id),
            dash(&event.source_ip),
            format!("{}.{}", event.service, event.action),
            match &event.error_code {
                Some(code) if event.outcome == "failure" => code.clone(),
                _ => event.outcome.to_string(),
            },
            event.request_id.clone().unwrap_or_else(|| event.event_id.clone()),
        ]);
    }
    table.write_to(out)?;
    writeln!(
        out,
        "{} event{}; {} block{} read of {} checked",
        page.events.len(),
        if page.events.len() == 1 { "" } else { "s" },
        page.blocks_opened,
        if page.blocks_opened == 1 { "" } else { "s" },
        page.blocks_checked
    )
}
