//! `store verify | migrate | head | backup | restore | prune | stats` and `dead-letters`: the
//! store's tamper evidence, its backups, its retention, and the records that
//! could not be read.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use trailwarden::alarm::retention;
use trailwarden::config::Settings;
use trailwarden::service;
use trailwarden::terminal::{Column, Table, show};

use super::{Format, store_path};

#[derive(Subcommand)]
pub enum StoreCommand {
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
    /// Create the store, or bring its schema up to date, and print its
    /// version: a SQLite file or a PostgreSQL URL (`postgres://…`). Every
    /// command migrates on opening; this does only that (run it once before
    /// starting several daemons on a new PostgreSQL database). With `--from`,
    /// then copy every row of that store into it (it must be empty): moving a
    /// SQLite store to PostgreSQL, or back. Ids are kept, so the hash chain
    /// verifies on the copy.
    Migrate {
        #[arg(long, value_name = "FILE|URL")]
        db: Option<PathBuf>,
        /// A store to copy into the (empty) store at `--db`.
        #[arg(long, value_name = "FILE|URL")]
        from: Option<PathBuf>,
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
    /// Install a backup as the store: the backup is verified first (a backup
    /// that fails `store verify` is refused), the store must not be in use
    /// (stop the daemon), and the store as it was is kept beside it.
    Restore {
        /// The backup (`store backup`, or one of `store.backup.dir`).
        backup: PathBuf,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
    /// Remove what `[retention]` no longer keeps, now, in small transactions
    /// (safe while the daemon runs; it also does this every `retention.interval`).
    Prune {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Rows, bytes and the oldest row of every table, the file, WAL and free space.
    Stats {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

pub fn store_command(settings: &Settings, command: StoreCommand) -> Result<ExitCode> {
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
            let store = service::open_existing_store(settings, db.as_deref())?;
            let report = store.verify_chain(anchor.as_ref().map(|(seq, hash)| (*seq, hash.as_str())))?;
            let head = report
                .head
                .as_ref()
                .map_or_else(|| "empty".to_string(), |(seq, hash)| format!("{seq}:{hash}"));
            if report.ok() {
                println!("chain ok: {}; head {head}", report.summary());
                return Ok(ExitCode::SUCCESS);
            }
            let first = &report.problems[0];
            println!("chain BROKEN: first bad link: {}", show(&first.to_string()));
            for problem in &report.problems[1..] {
                println!("  also: {}", show(&problem.to_string()));
            }
            println!("({}; head {head})", report.summary());
            Ok(ExitCode::from(1))
        }
        StoreCommand::Migrate { db, from } => {
            let path = db.unwrap_or_else(|| settings.store.path.clone());
            let before = trailwarden::db::StoreLocation::from_path(&path);
            if let Some(from) = from {
                let shown = trailwarden::db::StoreLocation::from_path(&from).display();
                if !trailwarden::db::StoreLocation::from_path(&from).is_postgres() && !from.is_file() {
                    anyhow::bail!("no store at {}", show(&shown));
                }
                let report =
                    trailwarden::alarm::copy::copy_store(&from, &path, trailwarden::options::store_options(settings))
                        .with_context(|| format!("copying {shown} into {}", before.display()))?;
                for (table, rows) in &report.tables {
                    println!("{table:<20} {rows:>10} rows");
                }
                println!("copied {} rows from {shown} into {}", report.rows(), before.display());
            }
            let store = trailwarden::alarm::store::Store::open(&path, trailwarden::options::store_options(settings))?;
            let (version, latest) = store.schema_versions()?;
            let kind = if store.is_postgres() { "PostgreSQL" } else { "SQLite" };
            println!(
                "{kind} store at {}: schema version {version} of {latest}",
                before.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Head { db } => {
            let store = service::open_existing_store(settings, db.as_deref())?;
            match store.chain_head()? {
                Some((seq, hash)) => println!("{seq}:{hash}"),
                None => println!("empty"),
            }
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Backup { path, db } => {
            let store = service::open_existing_store(settings, db.as_deref())?;
            store.backup_to(&path)?;
            println!("backup written to {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Restore { backup, db } => {
            let target = db.unwrap_or_else(|| settings.store.path.clone());
            if !backup.is_file() {
                anyhow::bail!("no backup at {}", show(&backup.display().to_string()));
            }
            let restored =
                trailwarden::alarm::restore::restore(&backup, &target, trailwarden::options::store_options(settings))?;
            println!(
                "backup verified: chain ok: {} (store version {})",
                restored.verification.summary(),
                restored.backup_version
            );
            // A URL without its password.
            let shown = trailwarden::db::StoreLocation::from_path(&target).display();
            match &restored.previous {
                Some(previous) => println!(
                    "restored into {shown}; the store as it was is kept at {}",
                    previous.display()
                ),
                None => println!("restored into {shown}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Prune { db, format } => {
            let mut store = service::open_existing_store(settings, db.as_deref())?;
            let report = retention::prune(&mut store, &settings.retention.policy, chrono::Utc::now(), &|| false)
                .context("pruning the store")?;
            if format == Format::Json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("removed: {report}");
            }
            if let Some(error) = &report.chain_error {
                eprintln!("chain not cut: {error}");
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Stats { db, format } => {
            let store = service::open_existing_store(settings, db.as_deref())?;
            let stats = store.stats().context("reading store statistics")?;
            if format == Format::Json {
                println!("{}", serde_json::to_string(&stats)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{}: file {}, WAL {}, free {}{}",
                show(&stats.path),
                megabytes(stats.file_bytes),
                megabytes(stats.wal_bytes),
                megabytes(stats.free_bytes),
                stats
                    .chain_checkpoint
                    .map(|seq| format!(", chain kept from link {}", seq + 1))
                    .unwrap_or_default()
            );
            let mut table = Table::new(vec![
                Column::left("TABLE", 24),
                Column::right("ROWS", 12),
                Column::right("SIZE", 10),
                Column::left("OLDEST", 0),
            ]);
            for row in &stats.tables {
                table.row(vec![
                    row.table.clone(),
                    row.rows.to_string(),
                    megabytes(row.bytes),
                    row.oldest.clone().unwrap_or_default(),
                ]);
            }
            print!("{}", table.render());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

#[derive(Args)]
pub struct DeadLettersArgs {
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn dead_letters(settings: &Settings, args: DeadLettersArgs) -> Result<ExitCode> {
    let DeadLettersArgs { db, limit, format } = args;
    let store = service::open_existing_store(settings, db.as_deref())?;
    // Unreadable records can quote access keys: the ones recognisable by prefix are masked.
    let letters = service::list_dead_letters(&store, limit)?;
    if format == Format::Table {
        if letters.is_empty() {
            println!("no dead letters in {}", show(&store_path(settings, db.as_deref())));
            return Ok(ExitCode::SUCCESS);
        }
        let mut table = Table::new(vec![
            Column::right("ID", 10),
            Column::left("RECEIVED", 24),
            Column::left("ORIGIN", 60),
            Column::left("REASON", 0),
        ]);
        for letter in &letters {
            table.row(vec![
                letter.id.to_string(),
                letter.received_at.clone(),
                letter.origin.clone(),
                letter.reason.clone(),
            ]);
        }
        print!("{}", table.render());
    } else {
        for letter in &letters {
            println!("{}", serde_json::to_string(letter)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
