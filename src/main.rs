//! The `trailwarden` binary: parse the command line, load the configuration,
//! set up logging, and hand the command to `cli` (one file per command group
//! under `src/cli/`, over the library). Exit status: 0 on success, 1 when the
//! command could not run (bad config, rules that do not load, missing path,
//! store failure), 2 on usage errors (from clap).

mod cli;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use trailwarden::config::Settings;
use trailwarden::terminal;

/// mimalloc: audit records become many small allocations (JSON values) that
/// are freed on another thread; glibc malloc spends a fifth of the run on
/// them (measured with callgrind, see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    trailwarden::memory::configure_allocator();
    let args = cli::Cli::parse();
    if !args.command.keeps_sigpipe() {
        restore_default_sigpipe();
    }
    let outcome = Settings::load(args.config.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|settings| {
            init_logging(&settings)?;
            trailwarden::geoip::install(&settings.geoip);
            trailwarden::iplists::install(&settings.ip_lists);
            cli::dispatch(args.command, settings)
        });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // Errors quote file names, record text and rule files: escaped
            // line by line, so multi-line diagnostics keep their lines.
            eprintln!("error: {}", terminal::escape_lines(&format!("{error:#}")));
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

/// Logging from `log.level`, or from `TRAILWARDEN_LOG` when it is set. A
/// filter that would silently switch logging off is an error naming where it
/// came from (`log.level` is checked with the rest of the configuration).
fn init_logging(settings: &Settings) -> Result<()> {
    let text = match std::env::var_os("TRAILWARDEN_LOG") {
        Some(value) if !value.is_empty() => {
            let text = value
                .into_string()
                .map_err(|_| anyhow::anyhow!("environment variable TRAILWARDEN_LOG: the value is not valid UTF-8"))?;
            trailwarden::config::check_log_filter(&text)
                .map_err(|problem| anyhow::anyhow!("environment variable TRAILWARDEN_LOG = {text:?}: {problem}"))?;
            text
        }
        _ => settings.log.level.clone(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&text).with_context(|| format!("log filter {text:?}"))?;
    // Colours only on a terminal, and not when NO_COLOR is set (no-color.org):
    // log files and journald get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    if settings.log.json {
        let _ = builder.json().try_init();
    } else {
        // Event fields reach log lines: escaped like every human-readable output.
        let _ = builder.fmt_fields(terminal::log_fields()).try_init();
    }
    Ok(())
}
