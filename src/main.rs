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
use trailwarden::alarm::workflow::Status;
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
    /// Process files, directories or stdin (`-`) once, merged in event-time order, and print every rule match.
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
    /// List, inspect and triage alarms.
    Alarms {
        #[command(subcommand)]
        command: AlarmsCommand,
    },
    /// The alarm store: verify the hash chain, show its head, back it up.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
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
    /// HTTP API tokens: make one, or hash one for `[[api.tokens]]`.
    Api {
        #[command(subcommand)]
        command: ApiCommand,
    },
    /// Allowlist policies: known-good patterns counted instead of alarmed.
    Allowlist {
        #[command(subcommand)]
        command: AllowlistCommand,
    },
    /// Remarks (at most 20 characters) on access keys and IP addresses.
    Remark {
        #[command(subcommand)]
        command: RemarkCommand,
    },
    /// The organisation's own IPs and CIDRs ("within the account" addresses).
    Assets {
        #[command(subcommand)]
        command: AssetsCommand,
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
    /// Notifications: the delivery outbox, resending, testing a topic.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
}

#[derive(Subcommand)]
enum NotifyCommand {
    /// List notification deliveries, newest first.
    Deliveries {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Only deliveries given up (permanent error, or past `notify.max_age`).
        #[arg(long, conflicts_with = "status")]
        failed: bool,
        /// pending, delivered, failed or folded (into a digest).
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        #[arg(long, value_name = "NAME")]
        topic: Option<String>,
        #[arg(long, value_name = "ID")]
        alarm: Option<i64>,
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Queue failed deliveries again, with their delivery ids (a running daemon sends them).
    Resend {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Delivery row ids (the first column of `notify deliveries`).
        #[arg(value_name = "ID", required_unless_present = "all_failed")]
        ids: Vec<i64>,
        /// Every failed delivery.
        #[arg(long, conflicts_with = "ids")]
        all_failed: bool,
    },
    /// Send a sample alarm through every subscription of TOPIC now, and report each result.
    Test {
        #[arg(value_name = "TOPIC")]
        topic: String,
    },
    /// The configured topics, their filters and subscriptions (secrets hidden).
    Topics,
}

// Parsed once per process: the size of the `add` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum AllowlistCommand {
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
        /// Who is responsible for the policy.
        #[arg(long)]
        owner: String,
        /// Why the pattern is allowed.
        #[arg(long)]
        reason: String,
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
    /// Remove a policy.
    Remove {
        id: i64,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
    /// Policies never hit, and expired policies: candidates for removal.
    Report {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand)]
enum ApiCommand {
    /// Print a fresh random token (once: only its hash is kept) and the
    /// `[[api.tokens]]` snippet to paste into the configuration.
    NewToken {
        /// The token's name: the actor recorded for every change made with it.
        #[arg(long)]
        name: String,
        /// viewer (every GET), operator (+ triage, allowlist, remarks, assets) or admin (+ rule reloads).
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
    },
    /// Read a token on stdin and print its SHA-256 (the `sha256` of `[[api.tokens]]`).
    HashToken,
}

#[derive(Subcommand)]
enum RemarkCommand {
    /// Set (or replace) the remark on an access key or an IP address.
    Set {
        #[arg(value_parser = ["key", "ip"])]
        kind: String,
        value: String,
        /// At most 20 characters.
        text: String,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
    /// Remove a remark.
    Remove {
        #[arg(value_parser = ["key", "ip"])]
        kind: String,
        value: String,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
    /// List remarks (keys masked).
    List {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand)]
enum AssetsCommand {
    /// Add (or rename) an asset: an IP or CIDR and its name.
    Add {
        cidr: String,
        name: String,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
    /// Import `cidr,name` lines (`#` comments and blank lines skipped). Bad lines are
    /// reported with file:line and skipped; exit 1 if there was any.
    Import {
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
    /// List assets.
    List {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
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
        /// Only this account (ID or name).
        #[arg(long)]
        account: Option<String>,
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
enum SortBy {
    Time,
    Level,
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Check the hash chain over alarms and status changes; names the first
    /// bad link and exits 1 when anything was edited, deleted or inserted.
    Verify {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// A head recorded earlier (`SEQ:HASH`, as logged or printed by `store head`)
        /// that must still be in the chain.
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<String>,
    },
    /// Print the chain's head (`SEQ:HASH`), to anchor it elsewhere.
    Head {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
    /// An online, consistent copy of the store (safe while the daemon runs).
    Backup {
        /// Where to write it (must not exist).
        path: PathBuf,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
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
    // `run` must never die of a closed socket, and `replay` finishes filling its
    // store even when the reader of its output has gone.
    if !matches!(cli.command, Command::Run { .. } | Command::Replay { .. }) {
        restore_default_sigpipe();
    }
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// Commands that print (`alarms list | head`) end quietly when the reader goes
/// away, like any Unix tool, instead of panicking on a broken pipe.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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

fn api_command(command: ApiCommand) -> Result<ExitCode> {
    use trailwarden::api::auth;
    match command {
        ApiCommand::NewToken { name, role } => {
            let name = name.trim().to_string();
            anyhow::ensure!(
                !name.is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control),
                "--name {name:?}: use 1 to 64 characters"
            );
            let role = trailwarden::config::Role::parse(&role)
                .with_context(|| format!("--role {role}: use viewer, operator or admin"))?;
            let token = auth::new_token().map_err(|error| anyhow::anyhow!("no random numbers: {error}"))?;
            println!("token (shown once; only its hash is stored):\n\n  {token}\n");
            println!("add to the configuration:\n");
            print!("{}", auth::token_snippet(&name, role, &token));
            Ok(ExitCode::SUCCESS)
        }
        ApiCommand::HashToken => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("reading stdin")?;
            let token = text.trim();
            anyhow::ensure!(!token.is_empty(), "stdin: no token to hash");
            println!("{}", hex::encode(auth::hash_token(token)));
            Ok(ExitCode::SUCCESS)
        }
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
        Command::Store { command } => store_command(&settings, command),
        Command::DeadLetters { db, limit, format } => {
            let store = app::open_store(&settings, db.as_deref())?;
            // Unreadable records can quote access keys: the ones recognisable by prefix are masked.
            let letters = app::list_dead_letters(&store, limit)?;
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
        Command::Api { command } => api_command(command),
        Command::Allowlist { command } => allowlist_command(&settings, command),
        Command::Remark { command } => remark_command(&settings, command),
        Command::Assets { command } => assets_command(&settings, command),
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
            let mut report = app::activity_report(&store, &query)?;
            // Keys leave the store masked.
            app::mask_activity_report(&mut report);
            match format {
                ActivityFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                ActivityFormat::Table => print_activity(&report),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Notify { command } => notify_command(&settings, command),
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
            let mut traces = app::list_traces(&store, &filter)?;
            // Keys leave the store masked, in the trace and in its raw record.
            app::mask_traces(&mut traces);
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
        let mut signals = Signals::install();
        let daemon = app::Daemon::start(&settings, db.as_deref(), once)?;
        let api = if settings.api.enabled {
            match trailwarden::api::ApiServer::start(&settings, daemon.api_handle()).await {
                Ok(api) => {
                    tracing::info!(url = api.url(), address = %api.local_addr(), "HTTP API listening");
                    eprintln!("console: {}", api.url());
                    if let Some(path) = api.token_file() {
                        eprintln!(
                            "console: no [[api.tokens]] configured; an admin token is in {} (owner-only); \
                             `trailwarden api new-token` makes named ones",
                            path.display()
                        );
                    }
                    Some(api)
                }
                Err(error) => {
                    let _ = tokio::task::spawn_blocking(move || daemon.shutdown()).await;
                    return Err(anyhow::Error::from(error).context("starting the HTTP API"));
                }
            }
        } else {
            None
        };
        let notifier = match daemon.start_notifier(&settings) {
            Ok(notifier) => notifier,
            Err(error) => {
                let _ = tokio::task::spawn_blocking(move || daemon.shutdown()).await;
                if let Some(api) = api {
                    api.stop(std::time::Duration::from_secs(5)).await;
                }
                return Err(error.into());
            }
        };
        if once {
            let finished = async {
                while !daemon.source_finished() {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            };
            tokio::select! {
                _ = finished => {}
                _ = signals.wait(&daemon) => tracing::info!("shutting down: stopping intake, draining, committing"),
            }
        } else {
            signals.wait(&daemon).await;
            tracing::info!("shutting down: stopping intake, draining, committing");
        }
        // The API goes first: readiness turns 503, requests in flight finish.
        if let Some(api) = api {
            api.stop(std::time::Duration::from_secs(5)).await;
        }
        let shutdown = async move {
            let report = tokio::task::spawn_blocking(move || daemon.shutdown()).await;
            // The last batch is committed: its notifications are in the outbox; send what is due.
            if let Some(notifier) = notifier {
                notifier.stop().await;
            }
            report
        };
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

/// The daemon's signal handlers, installed before anything starts: a SIGHUP
/// or SIGTERM that arrives while the daemon is still starting is then
/// handled, not fatal (the default action of both is to end the process).
struct Signals {
    #[cfg(unix)]
    streams: Option<(
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
    )>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(terminate), Ok(hangup), Ok(interrupt)) => Some((terminate, hangup, interrupt)),
                _ => {
                    tracing::warn!("cannot listen for SIGTERM / SIGHUP; only Ctrl-C stops the daemon");
                    None
                }
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Wait for Ctrl-C or SIGTERM; SIGHUP reloads the rules and keeps waiting.
    async fn wait(&mut self, daemon: &app::Daemon) {
        #[cfg(unix)]
        if let Some((terminate, hangup, interrupt)) = &mut self.streams {
            loop {
                tokio::select! {
                    _ = interrupt.recv() => return,
                    _ = terminate.recv() => return,
                    _ = hangup.recv() => {
                        tracing::info!("SIGHUP: reloading rules");
                        daemon.reload();
                    }
                }
            }
        }
        let _ = daemon;
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn alarms(settings: &Settings, command: AlarmsCommand) -> Result<ExitCode> {
    match command {
        AlarmsCommand::List {
            db,
            format,
            status,
            level,
            rule,
            account,
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
            let store = app::open_store(settings, db.as_deref())?;
            let filter = AlarmFilter {
                status,
                min_level,
                rule,
                account,
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
            let rows = app::list_alarms(&store, &filter)?;
            match format {
                Format::Table => {
                    println!(
                        "{:>5}  {:<6}  {:<12}  {:<34}  {:>6}  {:<24}  {:<24}  GROUP",
                        "ID", "LEVEL", "STATUS", "RULE", "COUNT", "FIRST SEEN", "LAST SEEN"
                    );
                    for view in rows {
                        let row = &view.alarm;
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
            let alarm = &detail.alarm.alarm;
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
                "  access key:  {} / {}",
                identity.access_key_id.as_deref().unwrap_or("-"),
                detail.alarm.access_key_remark.as_deref().unwrap_or("-")
            );
            println!(
                "  seen:        {} .. {} ({} times)",
                alarm.first_seen, alarm.last_seen, alarm.count
            );
            println!("  group key:   {}", alarm.group_key);
            println!("  last output: {}", alarm.output);
            println!("  calls:");
            println!(
                "    {:<40} {:<34} {:<20} {:<8} {:<34} {:>4} {:>4}  {:<24} LAST CALL",
                "SOURCE IP (ASSET)", "IP TYPE", "REMARK", "METHOD", "API", "OK", "FAIL", "FIRST CALL"
            );
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
                println!(
                    "    {:<40} {:<34} {:<20} {:<8} {:<34} {:>4} {:>4}  {:<24} {}",
                    address,
                    view.ip.ip_type_label,
                    view.ip.ip_remark.as_deref().unwrap_or("-"),
                    call.call_method,
                    format!("{}.{}", call.service, call.action),
                    call.success_count,
                    call.failure_count,
                    call.first_call,
                    call.last_call
                );
            }
            println!("  samples: {} kept (see --format json)", detail.samples.len());
            if detail.history.is_empty() {
                println!("  history: none (never triaged)");
            } else {
                println!("  history:");
                for change in &detail.history {
                    println!(
                        "    {}  {} → {}  by {}: {}",
                        change.at, change.from_status, change.to_status, change.actor, change.reason
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
            let mut store = app::open_store(settings, db.as_deref())?;
            let change = store.set_status(id, to, &actor, &reason)?;
            println!(
                "alarm {id}: {} → {} by {} at {}",
                change.from_status, change.to_status, change.actor, change.at
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An RFC 3339 time, or an age (`24h`, `7d`) counted back from now, as the
/// store's timestamp text.
fn parse_time(flag: &str, text: &str) -> Result<String> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(trailwarden::alarm::store::timestamp(time.with_timezone(&chrono::Utc)));
    }
    let age = humantime::parse_duration(text)
        .ok()
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .with_context(|| format!("{flag} {text:?}: use an RFC 3339 time (2026-03-02T08:00:00Z) or an age (24h, 7d)"))?;
    Ok(trailwarden::alarm::store::timestamp(chrono::Utc::now() - age))
}

fn store_command(settings: &Settings, command: StoreCommand) -> Result<ExitCode> {
    match command {
        StoreCommand::Verify { db, head } => {
            let anchor = match head.as_deref() {
                Some(text) => {
                    let (seq, hash) = text
                        .split_once(':')
                        .and_then(|(seq, hash)| Some((seq.parse::<i64>().ok()?, hash)))
                        .with_context(|| format!("--head {text:?}: expected SEQ:HASH as printed by `store head`"))?;
                    Some((seq, hash.to_string()))
                }
                None => None,
            };
            let store = app::open_store(settings, db.as_deref())?;
            let report = store.verify_chain(anchor.as_ref().map(|(seq, hash)| (*seq, hash.as_str())))?;
            let head = report
                .head
                .as_ref()
                .map_or_else(|| "empty".to_string(), |(seq, hash)| format!("{seq}:{hash}"));
            if report.ok() {
                println!(
                    "chain ok: {} links sealing {} alarms and {} status changes; head {head}",
                    report.links, report.alarms, report.transitions
                );
                return Ok(ExitCode::SUCCESS);
            }
            let first = &report.problems[0];
            println!("chain BROKEN: first bad link: {first}");
            for problem in &report.problems[1..] {
                println!("  also: {problem}");
            }
            println!(
                "({} links, {} alarms, {} status changes; head {head})",
                report.links, report.alarms, report.transitions
            );
            Ok(ExitCode::from(1))
        }
        StoreCommand::Head { db } => {
            let store = app::open_store(settings, db.as_deref())?;
            match store.chain_head()? {
                Some((seq, hash)) => println!("{seq}:{hash}"),
                None => println!("empty"),
            }
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Backup { path, db } => {
            let store = app::open_store(settings, db.as_deref())?;
            store.backup_to(&path)?;
            println!("backup written to {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_policies(policies: &[app::PolicyView]) {
    println!(
        "{:>4}  {:<7}  {:<22}  {:<18}  {:<24}  {:<20}  {:<7}  {:<10}  {:<26}  {:>5}  {:<24}  {:<24}  {:<12}  REASON",
        "ID",
        "STATE",
        "KEY",
        "IP",
        "API",
        "OPERATION",
        "METHOD",
        "ERROR",
        "RULE",
        "HITS",
        "LAST HIT",
        "EXPIRES",
        "OWNER"
    );
    for view in policies {
        let policy = &view.policy;
        let field = |value: &Option<String>| value.clone().unwrap_or_else(|| "*".into());
        println!(
            "{:>4}  {:<7}  {:<22}  {:<18}  {:<24}  {:<20}  {:<7}  {:<10}  {:<26}  {:>5}  {:<24}  {:<24}  {:<12}  {}",
            policy.id,
            view.state,
            field(&policy.matches.access_key),
            field(&policy.matches.source_ip),
            field(&policy.matches.api),
            field(&policy.matches.operation),
            field(&policy.matches.call_method),
            field(&policy.matches.error_code),
            field(&policy.matches.rule_id),
            policy.hit_count,
            policy.last_hit.as_deref().unwrap_or("-"),
            policy.expires_at.as_deref().unwrap_or("never"),
            policy.owner,
            policy.reason
        );
    }
}

fn print_json_rows<T: serde::Serialize>(rows: &[T], format: Format) -> Result<()> {
    match format {
        Format::Jsonl => {
            for row in rows {
                println!("{}", serde_json::to_string(row)?);
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(rows)?),
    }
    Ok(())
}

fn allowlist_command(settings: &Settings, command: AllowlistCommand) -> Result<ExitCode> {
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
            owner,
            reason,
            expires,
            format,
        } => {
            let store = app::open_store(settings, db.as_deref())?;
            let request = app::AllowlistAdd {
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
                owner,
                reason,
                expires,
            };
            let (policy, warning) = app::allowlist_add(&store, request)?;
            if let Some(warning) = warning {
                eprintln!("warning: {warning}");
            }
            let view = app::policy_view(policy, chrono::Utc::now());
            if format == Format::Table {
                println!("allowlist policy {} added", view.policy.id);
                print_policies(std::slice::from_ref(&view));
            } else {
                println!("{}", serde_json::to_string(&view)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        AllowlistCommand::List { db, format } => {
            let store = app::open_store(settings, db.as_deref())?;
            let policies = app::allowlist_list(&store)?;
            if format == Format::Table {
                print_policies(&policies);
            } else {
                print_json_rows(&policies, format)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AllowlistCommand::Remove { id, db } => {
            let store = app::open_store(settings, db.as_deref())?;
            app::allowlist_remove(&store, id)?;
            println!("allowlist policy {id} removed");
            Ok(ExitCode::SUCCESS)
        }
        AllowlistCommand::Report { db, format } => {
            let store = app::open_store(settings, db.as_deref())?;
            let report = app::allowlist_report(&store)?;
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

fn remark_kind(kind: &str) -> Result<trailwarden::alarm::assets::RemarkKind> {
    trailwarden::alarm::assets::RemarkKind::parse(kind).with_context(|| format!("{kind}: use key or ip"))
}

fn remark_command(settings: &Settings, command: RemarkCommand) -> Result<ExitCode> {
    use trailwarden::alarm::assets;
    match command {
        RemarkCommand::Set { kind, value, text, db } => {
            let kind = remark_kind(&kind)?;
            let store = app::open_store(settings, db.as_deref())?;
            let remark = assets::set_remark(store.connection(), kind, &value, &text, chrono::Utc::now())
                .map_err(app::AppError::from)?;
            println!("remark on {} set: {}", kind.as_str(), remark.remark);
            Ok(ExitCode::SUCCESS)
        }
        RemarkCommand::Remove { kind, value, db } => {
            let kind = remark_kind(&kind)?;
            let store = app::open_store(settings, db.as_deref())?;
            assets::remove_remark(store.connection(), kind, &value).map_err(app::AppError::from)?;
            println!("remark on {} removed", kind.as_str());
            Ok(ExitCode::SUCCESS)
        }
        RemarkCommand::List { db, format } => {
            let store = app::open_store(settings, db.as_deref())?;
            let remarks = app::remark_list(&store)?;
            if format != Format::Table {
                return print_json_rows(&remarks, format).map(|_| ExitCode::SUCCESS);
            }
            println!("{:<4}  {:<40}  {:<20}  UPDATED", "KIND", "VALUE", "REMARK");
            for remark in &remarks {
                println!(
                    "{:<4}  {:<40}  {:<20}  {}",
                    remark.kind.as_str(),
                    remark.value,
                    remark.remark,
                    remark.updated_at
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn assets_command(settings: &Settings, command: AssetsCommand) -> Result<ExitCode> {
    use trailwarden::alarm::assets;
    match command {
        AssetsCommand::Add { cidr, name, db } => {
            let store = app::open_store(settings, db.as_deref())?;
            let asset =
                assets::add_asset(store.connection(), &cidr, &name, chrono::Utc::now()).map_err(app::AppError::from)?;
            println!("asset {} added: {}", asset.cidr, asset.name);
            Ok(ExitCode::SUCCESS)
        }
        AssetsCommand::Import { file, db } => {
            let mut store = app::open_store(settings, db.as_deref())?;
            let report = assets::import_assets(store.connection_mut(), &file, chrono::Utc::now())
                .map_err(app::AppError::from)?;
            for problem in &report.problems {
                eprintln!("{problem}");
            }
            println!(
                "assets import: {} imported, {} bad line{}",
                report.imported,
                report.problems.len(),
                if report.problems.len() == 1 { "" } else { "s" }
            );
            Ok(if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AssetsCommand::List { db, format } => {
            let store = app::open_store(settings, db.as_deref())?;
            let assets = assets::list_assets(store.connection()).map_err(app::AppError::from)?;
            if format != Format::Table {
                return print_json_rows(&assets, format).map(|_| ExitCode::SUCCESS);
            }
            println!("{:<43}  {:<30}  UPDATED", "CIDR", "NAME");
            for asset in &assets {
                println!("{:<43}  {:<30}  {}", asset.cidr, asset.name, asset.updated_at);
            }
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
    println!("\nbusiest APIs");
    println!(
        "  {:<8} {:<48} {:>10} {:>8} {:>10}",
        "CLOUD", "SERVICE.ACTION", "EVENTS", "FAILED", "PRINCIPALS"
    );
    for row in &report.busiest_apis {
        println!(
            "  {:<8} {:<48} {:>10} {:>8} {:>10}",
            row.provider,
            format!("{}.{}", row.service, row.action),
            row.events,
            row.failures,
            row.principals
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
            pair.first_seen, &pair.access_key_id, pair.source_ip, pair.provider, pair.principal
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

fn notify_command(settings: &Settings, command: NotifyCommand) -> Result<ExitCode> {
    use trailwarden::notify::outbox;
    match command {
        NotifyCommand::Deliveries {
            db,
            failed,
            status,
            topic,
            alarm,
            limit,
            format,
        } => {
            let status = if failed { Some("failed".to_string()) } else { status };
            if let Some(status) = &status
                && !outbox::STATUSES.contains(&status.as_str())
            {
                anyhow::bail!("--status {status}: expected one of {}", outbox::STATUSES.join(", "));
            }
            let store = app::open_store(settings, db.as_deref())?;
            let rows = outbox::list(
                store.connection(),
                &outbox::DeliveryFilter {
                    id: None,
                    status,
                    topic,
                    alarm_id: alarm,
                    limit,
                },
            )?;
            match format {
                Format::Table => {
                    println!(
                        "{:>6}  {:<9}  {:<9}  {:<24}  {:<7}  {:>6}  {:>3}  {:<24}  LAST ERROR / DELIVERED",
                        "ID", "STATUS", "KIND", "TOPIC/SUBSCRIPTION", "CHANNEL", "ALARM", "TRY", "DELIVERY ID"
                    );
                    for row in &rows {
                        let detail = match row.status.as_str() {
                            "delivered" => row.delivered_at.clone().unwrap_or_default(),
                            "pending" => format!(
                                "next {}{}",
                                row.next_attempt_at.as_deref().unwrap_or("-"),
                                row.last_error
                                    .as_deref()
                                    .map(|error| format!(" · {error}"))
                                    .unwrap_or_default()
                            ),
                            "folded" => row
                                .digest_message
                                .map(|digest| format!("in digest message {digest}"))
                                .unwrap_or_else(|| "waiting for the next digest".into()),
                            _ => row.last_error.clone().unwrap_or_default(),
                        };
                        println!(
                            "{:>6}  {:<9}  {:<9}  {:<24}  {:<7}  {:>6}  {:>3}  {:<24}  {}",
                            row.id,
                            row.status,
                            row.kind,
                            format!("{}/{}", row.topic, row.subscription),
                            row.channel,
                            row.alarm_id.map(|id| id.to_string()).unwrap_or_else(|| "-".into()),
                            row.attempts,
                            row.delivery_id,
                            detail
                        );
                    }
                }
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Jsonl => {
                    for row in &rows {
                        println!("{}", serde_json::to_string(row)?);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        NotifyCommand::Resend { db, ids, all_failed } => {
            let mut store = app::open_store(settings, db.as_deref())?;
            let requeued = outbox::resend(store.connection_mut(), &ids, all_failed)?;
            let mut code = ExitCode::SUCCESS;
            for id in &ids {
                if !requeued.contains(id) {
                    match outbox::status_of(store.connection(), *id)? {
                        Some(status) => eprintln!("delivery {id} is {status}, not failed: left as it is"),
                        None => eprintln!("delivery {id} does not exist"),
                    }
                    code = ExitCode::from(1);
                }
            }
            println!(
                "{} deliver{} queued again; a running daemon sends {} within `notify.poll_interval`",
                requeued.len(),
                if requeued.len() == 1 { "y" } else { "ies" },
                if requeued.len() == 1 { "it" } else { "them" }
            );
            Ok(code)
        }
        NotifyCommand::Test { topic } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let results = runtime.block_on(trailwarden::notify::worker::send_test(&settings.notify, &topic))?;
            let mut failed = 0;
            for (subscription, outcome) in &results {
                match outcome {
                    outbox::Outcome::Delivered { status } => println!(
                        "ok      {subscription}{}",
                        status.map(|code| format!(" ({code})")).unwrap_or_default()
                    ),
                    outbox::Outcome::Failed { error, .. } => {
                        failed += 1;
                        println!("FAILED  {subscription}: {error}");
                    }
                    outbox::Outcome::Deferred { .. } => {}
                }
            }
            println!(
                "{} of {} subscription(s) of topic {topic} received the sample alarm",
                results.len() - failed,
                results.len()
            );
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        NotifyCommand::Topics => {
            let notify = &settings.notify;
            if notify.topics.is_empty() {
                println!("no topics configured ([[notify.topics]] in {})", settings.origin);
            }
            for topic in &notify.topics {
                let mut on = Vec::new();
                if topic.on_opened {
                    on.push("opened");
                }
                if topic.on_escalated {
                    on.push("escalated");
                }
                if topic.on_status {
                    on.push("status");
                }
                println!(
                    "{}: level >= {}, rules {}, tags {}, accounts {}, on {}, rate limit {}",
                    topic.name,
                    topic.min_level,
                    list_or_any(&topic.rules),
                    list_or_any(&topic.tags),
                    list_or_any(&topic.accounts),
                    on.join("/"),
                    if topic.rate_limit == 0 {
                        "none".to_string()
                    } else {
                        format!(
                            "{} per {} (digest every {})",
                            topic.rate_limit,
                            humantime::format_duration(topic.rate_window),
                            humantime::format_duration(topic.digest_interval)
                        )
                    }
                );
                for subscription in &topic.subscriptions {
                    match &subscription.target {
                        trailwarden::notify::Target::Email { to } => {
                            println!("  {}  email  {}", subscription.name, to.join(", "))
                        }
                        trailwarden::notify::Target::Webhook(hook) => println!(
                            "  {}  webhook  {}  {}{}",
                            subscription.name,
                            hook.format.as_str(),
                            trailwarden::notify::config::redact_url(&hook.url),
                            if hook.secret.is_some() { "  (signed)" } else { "" }
                        ),
                    }
                }
            }
            if !notify.enabled {
                println!("notify.enabled = false: nothing is queued or sent");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list_or_any(values: &[String]) -> String {
    if values.is_empty() {
        "any".to_string()
    } else {
        values.join(",")
    }
}
