//! `run`, `replay` and `normalize`: the daemon, a backtest over files, and
//! what the rules see of each record.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use trailwarden::config::Settings;
use trailwarden::replay::{self, MatchFormat, ReplayRequest};

use super::Format;

#[derive(Args)]
pub struct RunArgs {
    /// Store file, overriding `store.path`.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Read the sources once and exit instead of watching.
    #[arg(long)]
    pub once: bool,
}

#[derive(Args)]
pub struct ReplayArgs {
    /// Files, directories, or `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Aggregate into this store file.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

#[derive(Args)]
pub struct BackfillArgs {
    /// Files and directories of past trails.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Store file, overriding `store.path` (the store the daemon will use).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

#[derive(Args)]
pub struct NormalizeArgs {
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Include the original record under `raw`.
    #[arg(long)]
    pub raw: bool,
}

/// `run`: the daemon until a signal (or, with `--once`, until its sources
/// are read).
pub fn run(settings: Settings, args: RunArgs) -> Result<ExitCode> {
    let RunArgs { db, once } = args;
    match trailwarden::daemon::lifecycle::run(settings, db.as_deref(), once)? {
        trailwarden::daemon::lifecycle::Stopped::Cleanly => Ok(ExitCode::SUCCESS),
        trailwarden::daemon::lifecycle::Stopped::PastDeadline => Ok(ExitCode::from(1)),
    }
}

pub fn replay(settings: &Settings, args: ReplayArgs) -> Result<ExitCode> {
    let ReplayArgs { paths, format, db } = args;
    let format = match format {
        Format::Table => MatchFormat::Table,
        Format::Json | Format::Jsonl => MatchFormat::Jsonl,
    };
    let report = replay::replay(settings, ReplayRequest { paths, format, db })?;
    eprintln!("{}", replay::summary_line(&report));
    Ok(ExitCode::SUCCESS)
}

pub fn backfill(settings: &Settings, args: BackfillArgs) -> Result<ExitCode> {
    use trailwarden::daemon::backfill;
    let BackfillArgs { paths, db } = args;
    for path in &paths {
        if !path.exists() {
            anyhow::bail!("{}: no such file or directory", path.display());
        }
    }
    let started = std::time::Instant::now();
    // On a terminal a status line redrawn in place; otherwise a line every 5 s
    // (a backfill is usually left running, its output in a log).
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let every = if terminal {
        std::time::Duration::from_millis(250)
    } else {
        backfill::PROGRESS_EVERY
    };
    let report = backfill::backfill(settings, db.as_deref(), &paths, every, &mut |stats, elapsed| {
        let line = backfill::progress_line(stats, elapsed);
        if terminal {
            trailwarden::terminal::draw_status(&line);
        } else {
            eprintln!("{line}");
        }
    })?;
    if terminal {
        trailwarden::terminal::clear_status();
    }
    eprintln!("{}", backfill::progress_line(&report.stats, started.elapsed()));
    Ok(ExitCode::SUCCESS)
}

pub fn normalize(settings: &Settings, args: NormalizeArgs) -> Result<ExitCode> {
    let NormalizeArgs { paths, raw } = args;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (events, malformed) = replay::normalize_paths(settings, &paths, raw, &mut out)?;
    let _ = out.flush();
    eprintln!("normalize: {events} events, {malformed} malformed");
    Ok(ExitCode::SUCCESS)
}
