//! The `trailwarden` command line: a thin layer of argument parsing over the
//! library. Exit status: 0 on success, 1 when the command could not run
//! (bad config, rules that do not load, missing path, store failure), 2 on
//! usage errors (from clap).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use trailwarden::alarm::rollup::{ActivityQuery, ActivityReport, Trace, TraceFilter};
use trailwarden::alarm::store::AlarmFilter;
use trailwarden::app::{self, MatchFormat, ReplayRequest};
use trailwarden::config::Settings;
use trailwarden::event::model::OutcomeResult;
use trailwarden::rules::Level;

/// mimalloc: audit records become many small allocations (JSON values) that
/// are freed on another thread; glibc malloc spends a fifth of the run on
/// them (measured with callgrind, see README "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "trailwarden",
    version,
    about = "Streaming detection for Huawei Cloud CTS, Tencent CloudAudit and AWS CloudTrail audit logs",
    long_about = "trailwarden reads cloud audit records (files, directories, stdin), normalizes the three \
clouds into one event model, evaluates YAML detection rules, and keeps alarms in SQLite.\n\n\
Configuration: --config FILE, else config/default.toml in the working directory, else built-in \
defaults; any key can be overridden as TRAILWARDEN__<SECTION>__<KEY>."
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: read the configured sources, keep watching them, store alarms.
    ///
    /// With no arguments it uses config/default.toml: it processes the sample traces in
    /// examples/, keeps watching that directory, and writes alarms to data/trailwarden.db.
    /// Ctrl-C or SIGTERM stops it cleanly (intake stops, in-flight batches commit).
    Run {
        /// Store file, overriding `store.path`.
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Read the sources once and exit instead of watching.
        #[arg(long)]
        once: bool,
    },
    /// Process files, directories or stdin (`-`) once, in order, and print every rule match.
    ///
    /// Without --db the run uses a throw-away in-memory store and leaves the configured one
    /// untouched; with --db it aggregates into that store like the daemon. A summary goes to
    /// stderr. Exit status is 0 when the run completed, even if records were malformed.
    Replay {
        /// Files, directories, or `-` for stdin.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Aggregate into this store file.
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
    /// Print the normalized events of files, directories or stdin (`-`) as JSON lines.
    Normalize {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        /// Include the original record under `raw`.
        #[arg(long)]
        raw: bool,
    },
    /// Inspect alarms.
    Alarms {
        #[command(subcommand)]
        command: AlarmsCommand,
    },
    /// Inspect records that could not be read.
    DeadLetters {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Generate a synthetic audit corpus (all three clouds, ordinary activity with planted
    /// attacks) for benchmarks and demos: JSON lines to a file or stdout, or a directory in
    /// each cloud's native delivery layout.
    Generate {
        /// Number of records.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Days the corpus spans (from 2026-03-02).
        #[arg(long, default_value_t = 7)]
        days: i64,
        /// One planted attack scenario per this many records (0 = none).
        #[arg(long, default_value_t = 200)]
        attack_every: usize,
        /// Distinct access keys of ordinary traffic.
        #[arg(long, default_value_t = 60)]
        distinct_keys: usize,
        /// Distinct source IPs of ordinary traffic.
        #[arg(long, default_value_t = 40)]
        distinct_ips: usize,
        /// Write JSON lines to this file (`-` for stdout).
        #[arg(long, value_name = "FILE", conflicts_with = "dir")]
        out: Option<String>,
        /// Write a directory in the clouds' delivery layouts (gzip, Records, arrays …).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// With --dir: how much time each file covers (default: the clouds' own
        /// delivery intervals, one hour or five minutes).
        #[arg(long, value_name = "DURATION", requires = "dir")]
        file_span: Option<humantime::Duration>,
    },
    /// Work with rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// The god view: busiest principals and source IPs, failure rates by account, and
    /// (access key, source IP) pairs first seen in a time range.
    ///
    /// Counts come from hourly rollups of every event (matching a rule or not), so the
    /// range is widened to whole hours at its start; new pairs use exact times.
    /// TIME is RFC 3339 (2026-03-02T10:00:00Z), a date (2026-03-02) or a duration ago (24h, 7d).
    Activity {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Start of the range (inclusive).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// End of the range (exclusive).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Rows per list.
        #[arg(long, default_value_t = 10, value_name = "N")]
        top: u32,
        #[arg(long, value_enum, default_value_t = ActivityFormat::Table)]
        format: ActivityFormat,
    },
    /// Query key-operation traces (the operations of the SEC09-03 rules), most recent first,
    /// with their raw records.
    ///
    /// Text filters are case-insensitive. TIME is RFC 3339, a date or a duration ago (24h, 7d).
    Traces {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Call method (console, api, system, other) or the cloud's trace type
        /// (ConsoleAction, ApiCall, AwsConsoleAction …).
        #[arg(long, value_name = "M")]
        call_method: Option<String>,
        /// Service: ecs, cvm, iam, cam, ec2 …
        #[arg(long, value_name = "S")]
        service: Option<String>,
        #[arg(long, value_name = "T")]
        resource_type: Option<String>,
        /// Operator name or principal id.
        #[arg(long, value_name = "NAME")]
        operator: Option<String>,
        #[arg(long, value_enum)]
        status: Option<TraceStatus>,
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
        #[arg(long, value_enum, default_value_t = TraceFormat::Table)]
        format: TraceFormat,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ActivityFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum TraceFormat {
    Table,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum TraceStatus {
    Success,
    Failure,
}

#[derive(Subcommand)]
enum AlarmsCommand {
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
        #[arg(long)]
        limit: Option<u32>,
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

#[derive(Subcommand)]
enum RulesCommand {
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
    /// List rules: id, level, clouds covered, enabled, tags.
    List {
        path: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Jsonl,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAILWARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&settings.log.level));
    // Colours only on a terminal: log files and journald get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if settings.log.json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let settings = Settings::load(cli.config.as_deref())?;
    init_logging(&settings);
    match cli.command {
        Command::Run { db, once } => run_daemon(settings, db, once),
        Command::Replay { paths, format, db } => {
            let format = match format {
                Format::Table => MatchFormat::Table,
                Format::Json | Format::Jsonl => MatchFormat::Jsonl,
            };
            let report = app::replay(&settings, ReplayRequest { paths, format, db })?;
            eprintln!("{}", app::summary_line(&report));
            Ok(ExitCode::SUCCESS)
        }
        Command::Normalize { paths, raw } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let (events, malformed) = app::normalize_paths(&settings, &paths, raw, &mut out)?;
            let _ = out.flush();
            eprintln!("normalize: {events} events, {malformed} malformed");
            Ok(ExitCode::SUCCESS)
        }
        Command::Alarms { command } => alarms(&settings, command),
        Command::DeadLetters { db, limit, format } => {
            let store = app::open_store(&settings, db.as_deref())?;
            let letters = store.list_dead_letters(limit)?;
            if format == Format::Table {
                for letter in &letters {
                    println!("{:>6}  {}  {}", letter.id, letter.origin, letter.reason);
                }
            } else {
                for letter in &letters {
                    println!("{}", serde_json::to_string(letter)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { command } => rules(&settings, command),
        Command::Activity {
            db,
            since,
            until,
            top,
            format,
        } => {
            let now = chrono::Utc::now();
            let query = ActivityQuery {
                since: since
                    .map(|text| app::parse_time_arg("--since", &text, now))
                    .transpose()?,
                until: until
                    .map(|text| app::parse_time_arg("--until", &text, now))
                    .transpose()?,
                top: top.max(1),
            };
            let store = app::open_store(&settings, db.as_deref())?;
            let report = app::activity_report(&store, &query)?;
            match format {
                ActivityFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                ActivityFormat::Table => print_activity(&report),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Traces {
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
        } => {
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
                    .map(|text| app::parse_time_arg("--since", &text, now))
                    .transpose()?,
                until: until
                    .map(|text| app::parse_time_arg("--until", &text, now))
                    .transpose()?,
                limit,
            };
            let store = app::open_store(&settings, db.as_deref())?;
            let traces = app::list_traces(&store, &filter)?;
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
        Command::Generate {
            events,
            seed,
            days,
            attack_every,
            distinct_keys,
            distinct_ips,
            out,
            dir,
            file_span,
        } => {
            let options = trailwarden::synth::SynthOptions {
                seed,
                events,
                span: chrono::Duration::days(days.max(1)),
                attack_every,
                distinct_keys: distinct_keys.max(1),
                distinct_ips: distinct_ips.max(1),
                ..Default::default()
            };
            let summary = match (out.as_deref(), dir) {
                (_, Some(dir)) => {
                    let span = file_span
                        .map(|span| chrono::Duration::from_std(span.into()))
                        .transpose()
                        .context("--file-span is too long")?;
                    trailwarden::synth::write_example_dir_with_span(options, &dir, span)
                        .with_context(|| format!("writing {}", dir.display()))?
                }
                (Some("-") | None, None) => {
                    trailwarden::synth::write_jsonl(options, &mut std::io::stdout().lock()).context("writing stdout")?
                }
                (Some(path), None) => {
                    let mut file = std::fs::File::create(path).with_context(|| format!("creating {path}"))?;
                    trailwarden::synth::write_jsonl(options, &mut file).with_context(|| format!("writing {path}"))?
                }
            };
            eprintln!(
                "generate: {} records ({} huawei, {} tencent, {} aws), {} planted, {} files, {} bytes, {:.0} bytes/record",
                summary.records,
                summary.huawei,
                summary.tencent,
                summary.aws,
                summary.planted,
                summary.files,
                summary.bytes,
                summary.average_record_bytes()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_daemon(settings: Settings, db: Option<PathBuf>, once: bool) -> Result<ExitCode> {
    let deadline = settings.pipeline.shutdown_deadline;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        tracing::info!(config = %settings.origin, "trailwarden starting");
        let daemon = app::Daemon::start(&settings, db.as_deref(), once)?;
        if once {
            let finished = async {
                while !daemon.source_finished() {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            };
            tokio::select! {
                _ = finished => {}
                _ = wait_for_signal(&daemon) => tracing::info!("shutting down: stopping intake, draining, committing"),
            }
        } else {
            wait_for_signal(&daemon).await;
            tracing::info!("shutting down: stopping intake, draining, committing");
        }
        let shutdown = tokio::task::spawn_blocking(move || daemon.shutdown());
        match tokio::time::timeout(deadline, shutdown).await {
            Ok(Ok(report)) => {
                let stats = report.stats;
                tracing::info!(
                    records = stats.records,
                    events = stats.events,
                    malformed = stats.malformed,
                    matches = stats.matches,
                    alarms_new = stats.alarms_created,
                    alarms = stats.alarms_touched,
                    "stopped"
                );
                if let Some(error) = report.store_error {
                    return Err(anyhow::Error::from(error).context("the store failed"));
                }
                Ok(ExitCode::SUCCESS)
            }
            Ok(Err(join_error)) => Err(anyhow::anyhow!("shutdown failed: {join_error}")),
            Err(_) => {
                tracing::error!(
                    ?deadline,
                    "shutdown did not finish in time; exiting (uncommitted batches will be re-read on restart)"
                );
                Ok(ExitCode::from(1))
            }
        }
    });
    // A shutdown past its deadline is still running: do not wait for it.
    runtime.shutdown_background();
    result
}

/// Wait for Ctrl-C or SIGTERM; SIGHUP reloads the rules and keeps waiting.
#[cfg(unix)]
async fn wait_for_signal(daemon: &app::Daemon) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut hangup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
        tracing::warn!("cannot listen for SIGTERM / SIGHUP; only Ctrl-C stops the daemon");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = terminate.recv() => return,
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading rules");
                daemon.reload();
            }
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal(_daemon: &app::Daemon) {
    let _ = tokio::signal::ctrl_c().await;
}

fn alarms(settings: &Settings, command: AlarmsCommand) -> Result<ExitCode> {
    match command {
        AlarmsCommand::List {
            db,
            format,
            status,
            level,
            rule,
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
            let store = app::open_store(settings, db.as_deref())?;
            let filter = AlarmFilter {
                status,
                min_level,
                rule,
                limit,
            };
            let rows = app::list_alarms(&store, &filter)?;
            match format {
                Format::Table => {
                    println!(
                        "{:>5}  {:<6}  {:<12}  {:<34}  {:>6}  {:<24}  {:<24}  GROUP",
                        "ID", "LEVEL", "STATUS", "RULE", "COUNT", "FIRST SEEN", "LAST SEEN"
                    );
                    for row in rows {
                        println!(
                            "{:>5}  {:<6}  {:<12}  {:<34}  {:>6}  {:<24}  {:<24}  {}",
                            row.id,
                            row.level,
                            row.status,
                            row.rule,
                            row.count,
                            row.first_seen,
                            row.last_seen,
                            row.group_key
                        );
                    }
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
            let store = app::open_store(settings, db.as_deref())?;
            let detail = app::show_alarm(&store, id)?;
            if format != Format::Table {
                println!("{}", serde_json::to_string_pretty(&detail)?);
                return Ok(ExitCode::SUCCESS);
            }
            let alarm = &detail.alarm;
            let identity = &alarm.identity;
            println!("alarm {}: {} [{}]", alarm.id, alarm.title, alarm.level);
            println!("  rule:        {} (version {})", alarm.rule, alarm.rule_hash);
            println!("  status:      {}", alarm.status);
            println!(
                "  account:     {} {} ({})",
                identity.provider,
                identity.account_id.as_deref().unwrap_or("-"),
                identity.account_identity
            );
            println!(
                "  principal:   {} [{}] {}",
                identity.principal_name.as_deref().unwrap_or("-"),
                identity.principal_kind,
                identity.principal_arn.as_deref().unwrap_or("")
            );
            println!(
                "  access key:  {}",
                identity
                    .access_key_id
                    .as_deref()
                    .map(mask_key)
                    .unwrap_or_else(|| "-".into())
            );
            println!(
                "  seen:        {} .. {} ({} times)",
                alarm.first_seen, alarm.last_seen, alarm.count
            );
            println!("  group key:   {}", alarm.group_key);
            println!("  last output: {}", alarm.output);
            println!("  calls:");
            println!(
                "    {:<40} {:<9} {:<8} {:<34} {:>4} {:>4}  {:<24} LAST CALL",
                "SOURCE IP", "IP TYPE", "METHOD", "API", "OK", "FAIL", "FIRST CALL"
            );
            for call in &detail.calls {
                println!(
                    "    {:<40} {:<9} {:<8} {:<34} {:>4} {:>4}  {:<24} {}",
                    if call.source_ip.is_empty() {
                        "-"
                    } else {
                        &call.source_ip
                    },
                    call.ip_kind,
                    call.call_method,
                    format!("{}.{}", call.service, call.action),
                    call.success_count,
                    call.failure_count,
                    call.first_call,
                    call.last_call
                );
            }
            println!("  samples: {} kept (see --format json)", detail.samples.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_activity(report: &ActivityReport) {
    println!(
        "activity {} .. {}: {} events, {} failed",
        report.since.as_deref().unwrap_or("(start)"),
        report.until.as_deref().unwrap_or("(end)"),
        report.events,
        report.failures
    );
    println!("\nbusiest principals");
    println!(
        "  {:<8} {:<34} {:<40} {:>10} {:>8}",
        "CLOUD", "ACCOUNT", "PRINCIPAL", "EVENTS", "FAILED"
    );
    for row in &report.busiest_principals {
        println!(
            "  {:<8} {:<34} {:<40} {:>10} {:>8}",
            row.provider,
            dash(&row.account_id),
            row.principal,
            row.events,
            row.failures
        );
    }
    println!("\nbusiest source IPs");
    println!(
        "  {:<40} {:>10} {:>8} {:>10}",
        "SOURCE IP", "EVENTS", "FAILED", "PRINCIPALS"
    );
    for row in &report.busiest_source_ips {
        println!(
            "  {:<40} {:>10} {:>8} {:>10}",
            row.source_ip, row.events, row.failures, row.principals
        );
    }
    println!("\nfailure rates by account");
    println!(
        "  {:<8} {:<34} {:>10} {:>8} {:>7}",
        "CLOUD", "ACCOUNT", "EVENTS", "FAILED", "RATE"
    );
    for row in &report.failure_rates {
        println!(
            "  {:<8} {:<34} {:>10} {:>8} {:>6.1}%",
            row.provider,
            dash(&row.account_id),
            row.events,
            row.failures,
            row.failure_rate * 100.0
        );
    }
    println!(
        "\nnew (access key, source IP) pairs: {}{}",
        report.new_key_ips_total,
        if report.new_key_ips_total > report.new_key_ips.len() as u64 {
            format!(" (first {} shown)", report.new_key_ips.len())
        } else {
            String::new()
        }
    );
    println!(
        "  {:<24} {:<22} {:<40} {:<8} PRINCIPAL",
        "FIRST SEEN", "ACCESS KEY", "SOURCE IP", "CLOUD"
    );
    for pair in &report.new_key_ips {
        println!(
            "  {:<24} {:<22} {:<40} {:<8} {}",
            pair.first_seen,
            mask_key(&pair.access_key_id),
            pair.source_ip,
            pair.provider,
            pair.principal
        );
    }
}

fn print_traces(out: &mut dyn Write, traces: &[Trace]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:<7} {:<24} {:<8} {:<16} {:<34} {:<20} {:<7} SOURCE IP",
        "TIME", "CLOUD", "OPERATOR", "METHOD", "TRACE TYPE", "ACTION", "RESOURCE TYPE", "STATUS"
    )?;
    for trace in traces {
        writeln!(
            out,
            "{:<24} {:<7} {:<24} {:<8} {:<16} {:<34} {:<20} {:<7} {}",
            trace.time,
            trace.provider,
            trace.operator,
            trace.call_method,
            trace.trace_type.as_deref().unwrap_or("-"),
            format!("{}.{}", trace.service, trace.action),
            trace.resource_type.as_deref().unwrap_or("-"),
            trace.status,
            trace.source_ip.as_deref().filter(|ip| !ip.is_empty()).unwrap_or("-")
        )?;
    }
    Ok(())
}

fn dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// First 6 and last 4 characters of an access key (the console shows keys masked).
fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return key.to_string();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

fn rules(settings: &Settings, command: RulesCommand) -> Result<ExitCode> {
    match command {
        RulesCommand::Validate { path } => {
            let dir = path.unwrap_or_else(|| settings.rules.dir.clone());
            match app::check_rule_set(settings, Some(&dir)) {
                Ok(rules) => {
                    let (indexed, always) = rules.index_summary();
                    println!(
                        "{}: {} rules ({} indexed by operation/action, {} checked on every event), {} operations, version {}: OK",
                        dir.display(),
                        rules.rules.len(),
                        indexed,
                        always,
                        rules.catalog.len(),
                        rules.version
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(app::AppError::Rules { diagnostics, .. }) => {
                    let count = diagnostics.len();
                    for diagnostic in diagnostics.sorted() {
                        println!("{diagnostic}");
                    }
                    println!("{count} problem{}", if count == 1 { "" } else { "s" });
                    Ok(ExitCode::from(1))
                }
                Err(other) => Err(other.into()),
            }
        }
        RulesCommand::Test { path, filter } => {
            let outcomes = app::test_rules(settings, path.as_deref(), filter.as_deref())?;
            let mut passed = 0;
            let mut failed = Vec::new();
            for outcome in &outcomes {
                if outcome.passed {
                    passed += 1;
                    println!("test {} :: {} ... ok", outcome.rule, outcome.name);
                } else {
                    println!("test {} :: {} ... FAILED", outcome.rule, outcome.name);
                    failed.push(outcome);
                }
            }
            if !failed.is_empty() {
                println!("\nfailures:");
                for outcome in &failed {
                    println!(
                        "\n  {} :: {} ({}:{})\n    {}",
                        outcome.rule, outcome.name, outcome.file, outcome.loc, outcome.detail
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
        RulesCommand::List { path, format } => {
            let rules = app::load_rule_set(settings, path.as_deref())?;
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
                        "hash": rule.hash,
                        "file": rule.file.as_ref(),
                    });
                    println!("{line}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<38} {:<6} {:<22} {:<7} TAGS", "ID", "LEVEL", "CLOUDS", "ENABLED");
            for rule in &rules.rules {
                let clouds: Vec<&str> = rule.clouds.iter().map(|cloud| cloud.as_str()).collect();
                println!(
                    "{:<38} {:<6} {:<22} {:<7} {}",
                    rule.id,
                    rule.level.as_str(),
                    clouds.join(","),
                    if rule.enabled { "yes" } else { "no" },
                    rule.tags.join(",")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
