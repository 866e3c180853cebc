//! `state`: the engine's memory of keys before the first event.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use trailwarden::alarm::inventory;
use trailwarden::config::Settings;
use trailwarden::error::AppError;
use trailwarden::service;

#[derive(Subcommand)]
pub enum StateCommand {
    /// Import an access-key inventory (CSV: provider, key_id, created, last_used) into the
    /// engine's key table, so a key dormant since before the deployment is idle, not new.
    ///
    /// Columns in any order, named in a header (aliases: access_key_id, secret_id; created_at,
    /// create_time; last_used_at, last_used_date); other columns are ignored. Times are RFC 3339,
    /// `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC); empty, N/A or `never` is unknown. Bad lines
    /// are reported with their number and skipped (exit status 1). The daemon reads the table when
    /// it starts: import before starting it, or restart it after.
    Import {
        /// The inventory file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
}

pub fn state_command(settings: &Settings, command: StateCommand) -> Result<ExitCode> {
    match command {
        StateCommand::Import { file, db } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let (keys, problems) = inventory::parse(&file.display().to_string(), &text);
            for problem in &problems {
                eprintln!("{problem}");
            }
            let mut store = service::open_store(settings, db.as_deref())?;
            let now = chrono::Utc::now().timestamp_millis();
            let imported = store.import_key_inventory(&keys, now).map_err(AppError::Store)?;
            println!(
                "state import: {imported} keys imported, {} bad line{}",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
