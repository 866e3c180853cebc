//! The command line: argument definitions (clap) and one handler per command
//! group, each in its own file, over the library. Every handler prints through
//! the shared helpers here and in `trailwarden::terminal`: human output is
//! escaped, JSON output is exact.

mod alarms;
mod allowlist;
mod api;
mod events;
mod generate;
mod iplists;
mod notify;
mod remarks;
mod reports;
mod rules;
mod run;
mod shell;
mod state;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use trailwarden::config::Settings;

pub use alarms::AlarmsCommand;
pub use allowlist::AllowlistCommand;
pub use api::ApiCommand;
use events::EventsArgs;
use generate::GenerateArgs;
pub use notify::NotifyCommand;
use remarks::ChangesArgs;
pub use remarks::{AssetsCommand, RemarkCommand};
use reports::{ActivityArgs, TracesArgs};
pub use rules::RulesCommand;
use run::{BackfillArgs, NormalizeArgs, ReplayArgs, RunArgs};
use store::DeadLettersArgs;
pub use store::StoreCommand;

/// `--version`: the crate's version and the git revision it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TRAILWARDEN_REVISION"), ")");

#[derive(Parser)]
#[command(
    name = "trailwarden",
    version = VERSION,
    about = "Streaming detection for Huawei Cloud CTS, Tencent CloudAudit and AWS CloudTrail audit logs",
    long_about = "trailwarden reads cloud audit records (files, directories, stdin), normalizes the three \
clouds into one event model, evaluates YAML detection rules, and keeps alarms in SQLite.\n\n\
Configuration: --config FILE, else config/default.toml in the working directory, else built-in \
defaults; any key can be overridden as TRAILWARDEN__<SECTION>__<KEY>."
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon: read the configured sources, keep watching them, store alarms.
    ///
    /// With no arguments it uses config/default.toml: it processes the sample traces in
    /// examples/, keeps watching that directory, and writes alarms to data/trailwarden.db.
    /// Ctrl-C or SIGTERM stops it cleanly (intake stops, in-flight batches commit).
    Run(RunArgs),
    /// Process files, directories or stdin (`-`) once, merged in event-time order, and print every rule match.
    ///
    /// Without --db the run uses a throw-away in-memory store and leaves the configured one
    /// untouched; with --db it aggregates into that store like the daemon. A summary goes to
    /// stderr. Exit status is 0 when the run completed, even if records were malformed.
    Replay(ReplayArgs),
    /// Learn from past trails before going live: read files and directories (the clouds'
    /// delivery layouts too) into the store's engine state, rollups and traces, raising no
    /// alarm and sending nothing.
    ///
    /// After it, `idle-key-reused` knows each key's last use and `sensitive-api-from-new-address`
    /// each key's addresses. Files are checkpointed with the state they produced: run it again
    /// after an interruption and it resumes; the daemon later skips the files it read. Progress
    /// goes to stderr every 5 seconds.
    Backfill(BackfillArgs),
    /// Print the normalized events of files, directories or stdin (`-`) as JSON lines.
    Normalize(NormalizeArgs),
    /// List, inspect and triage alarms.
    Alarms {
        #[command(subcommand)]
        command: AlarmsCommand,
    },
    /// The alarm store: verify the hash chain, show its head, back it up and restore a backup, prune it to `[retention]`, show its size.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// The engine's memory: import an access-key inventory before the first event.
    State {
        #[command(subcommand)]
        command: state::StateCommand,
    },
    /// Inspect records that could not be read.
    DeadLetters(DeadLettersArgs),
    /// Generate a synthetic audit corpus (all three clouds, ordinary activity with planted
    /// attacks) for benchmarks and demos: JSON lines to a file or stdout, or a directory in
    /// each cloud's native delivery layout.
    Generate(GenerateArgs),
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
    /// The change log: who added or removed an allowlist policy, set or removed a remark,
    /// added an asset — when and through what (sealed by the hash chain).
    Changes(ChangesArgs),
    /// The god view: busiest principals and source IPs, failure rates by account, and
    /// (access key, source IP) pairs first seen in a time range.
    ///
    /// Counts come from hourly rollups of every event (matching a rule or not), so the
    /// range is widened to whole hours at its start; new pairs use exact times.
    /// TIME is RFC 3339 (2026-03-02T10:00:00Z), a date (2026-03-02) or a duration ago (24h, 7d).
    Activity(ActivityArgs),
    /// The address lists of `[ip_lists]` (hosting, VPN, Tor …): what each read from its
    /// files and what it could not, and which lists hold each IP given.
    ///
    /// Lists are read again at every rule reload (SIGHUP), so refreshed files need no restart.
    IpLists(iplists::IpListsArgs),
    /// Query key-operation traces (the operations of the SEC09-03 rules), most recent first,
    /// with their raw records.
    ///
    /// Text filters are case-insensitive. TIME is RFC 3339, a date or a duration ago (24h, 7d).
    Traces(TracesArgs),
    /// Search the event store: every event kept for `events.retention` (7 days), by key,
    /// principal, address or network, account, action, service, resource, id, outcome and
    /// time, newest first, with their raw records; `--alarm ID` for an alarm's events.
    ///
    /// Text filters compare whole values, ignoring case. A page that has more prints
    /// `more: --cursor C` on stderr. TIME is RFC 3339, a date or a duration ago (24h, 7d).
    Events(EventsArgs),
    /// Print shell completions (bash, zsh, fish …) to stdout, e.g. `trailwarden completions bash > /etc/bash_completion.d/trailwarden`.
    Completions(shell::CompletionsArgs),
    /// Write the manual pages (trailwarden.1 and one per command) to a directory.
    Man(shell::ManArgs),
    /// Notifications: the delivery outbox, resending, testing a topic.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Jsonl,
}

impl Command {
    /// `run` must never die of a closed socket, and `replay` finishes filling
    /// its store even when the reader of its output has gone.
    pub fn keeps_sigpipe(&self) -> bool {
        matches!(self, Command::Run(_) | Command::Replay(_))
    }
}

/// Run one command with its settings.
pub fn dispatch(command: Command, settings: Settings) -> Result<ExitCode> {
    match command {
        Command::Run(args) => run::run(settings, args),
        Command::Replay(args) => run::replay(&settings, args),
        Command::Backfill(args) => run::backfill(&settings, args),
        Command::Normalize(args) => run::normalize(&settings, args),
        Command::Alarms { command } => alarms::alarms(&settings, command),
        Command::Store { command } => store::store_command(&settings, command),
        Command::State { command } => state::state_command(&settings, command),
        Command::DeadLetters(args) => store::dead_letters(&settings, args),
        Command::Rules { command } => rules::rules(&settings, command),
        Command::Api { command } => api::api_command(command),
        Command::Allowlist { command } => allowlist::allowlist_command(&settings, command),
        Command::Remark { command } => remarks::remark_command(&settings, command),
        Command::Assets { command } => remarks::assets_command(&settings, command),
        Command::Changes(args) => remarks::changes_command(&settings, args),
        Command::Activity(args) => reports::activity(&settings, args),
        Command::IpLists(args) => iplists::ip_lists(&settings, args),
        Command::Notify { command } => notify::notify_command(&settings, command),
        Command::Traces(args) => reports::traces(&settings, args),
        Command::Events(args) => events::events(&settings, args),
        Command::Generate(args) => generate::generate(&settings, args),
        Command::Completions(args) => shell::completions(args),
        Command::Man(args) => shell::man(args),
    }
}

/// An RFC 3339 time, or an age (`24h`, `7d`) counted back from now, as the
/// store's timestamp text.
pub fn parse_time(flag: &str, text: &str) -> Result<String> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(trailwarden::alarm::store::timestamp(time.with_timezone(&chrono::Utc)));
    }
    let age = humantime::parse_duration(text)
        .ok()
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .with_context(|| format!("{flag} {text:?}: use an RFC 3339 time (2026-03-02T08:00:00Z) or an age (24h, 7d)"))?;
    Ok(trailwarden::alarm::store::timestamp(chrono::Utc::now() - age))
}

pub fn print_json_rows<T: serde::Serialize>(rows: &[T], format: Format) -> Result<()> {
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

/// The store a command works on, for messages.
pub fn store_path(settings: &Settings, db: Option<&std::path::Path>) -> String {
    db.unwrap_or(&settings.store.path).display().to_string()
}

pub fn dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}
