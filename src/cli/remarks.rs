//! `remark`, `assets` and `changes`: what the organisation knows about its
//! keys and addresses, and the sealed log of who changed it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use trailwarden::config::Settings;
use trailwarden::error::AppError;
use trailwarden::service;
use trailwarden::terminal::{Column, Table, show};

use super::{Format, print_json_rows};

#[derive(Subcommand)]
pub enum RemarkCommand {
    /// Set (or replace) the remark on an access key or an IP address.
    Set {
        #[arg(value_parser = ["key", "ip"])]
        kind: String,
        value: String,
        /// At most 20 characters.
        text: String,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Who sets it (default: the Unix user).
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
    },
    /// Remove a remark.
    Remove {
        #[arg(value_parser = ["key", "ip"])]
        kind: String,
        value: String,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Who removes it (default: the Unix user).
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
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
pub enum AssetsCommand {
    /// Add (or rename) an asset: an IP or CIDR and its name.
    Add {
        cidr: String,
        name: String,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Who adds it (default: the Unix user).
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
    },
    /// Import `cidr,name` lines (`#` comments and blank lines skipped). Bad lines are
    /// reported with file:line and skipped; exit 1 if there was any.
    Import {
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Who imports them (default: the Unix user).
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
    },
    /// List assets.
    List {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

pub fn remark_kind(kind: &str) -> Result<trailwarden::alarm::assets::RemarkKind> {
    trailwarden::alarm::assets::RemarkKind::parse(kind).with_context(|| format!("{kind}: use key or ip"))
}

pub fn remark_command(settings: &Settings, command: RemarkCommand) -> Result<ExitCode> {
    match command {
        RemarkCommand::Set {
            kind,
            value,
            text,
            db,
            actor,
        } => {
            let kind = remark_kind(&kind)?;
            let actor = trailwarden::alarm::changes::Actor::cli(actor.as_deref()).map_err(AppError::from)?;
            let mut store = service::open_store(settings, db.as_deref())?;
            let remark = service::remark_set(&mut store, kind, &value, &text, &actor)?;
            println!("remark on {} set: {}", kind.as_str(), show(&remark.remark));
            Ok(ExitCode::SUCCESS)
        }
        RemarkCommand::Remove { kind, value, db, actor } => {
            let kind = remark_kind(&kind)?;
            let actor = trailwarden::alarm::changes::Actor::cli(actor.as_deref()).map_err(AppError::from)?;
            let mut store = service::open_existing_store(settings, db.as_deref())?;
            service::remark_remove(&mut store, kind, &value, &actor)?;
            println!("remark on {} removed", kind.as_str());
            Ok(ExitCode::SUCCESS)
        }
        RemarkCommand::List { db, format } => {
            let store = service::open_existing_store(settings, db.as_deref())?;
            let remarks = service::remark_list(&store)?;
            if format != Format::Table {
                return print_json_rows(&remarks, format).map(|_| ExitCode::SUCCESS);
            }
            let mut table = Table::new(vec![
                Column::left("KIND", 4),
                Column::left("VALUE", 43),
                Column::left("REMARK", 20),
                Column::left("UPDATED", 0),
            ]);
            for remark in &remarks {
                table.row(vec![
                    remark.kind.as_str().to_string(),
                    remark.value.clone(),
                    remark.remark.clone(),
                    remark.updated_at.clone(),
                ]);
            }
            print!("{}", table.render());
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn assets_command(settings: &Settings, command: AssetsCommand) -> Result<ExitCode> {
    match command {
        AssetsCommand::Add { cidr, name, db, actor } => {
            let actor = trailwarden::alarm::changes::Actor::cli(actor.as_deref()).map_err(AppError::from)?;
            let mut store = service::open_store(settings, db.as_deref())?;
            let asset = service::asset_add(&mut store, &cidr, &name, &actor)?;
            println!("asset {} added: {}", show(&asset.cidr), show(&asset.name));
            Ok(ExitCode::SUCCESS)
        }
        AssetsCommand::Import { file, db, actor } => {
            let actor = trailwarden::alarm::changes::Actor::cli(actor.as_deref()).map_err(AppError::from)?;
            let mut store = service::open_store(settings, db.as_deref())?;
            let report = service::assets_import(&mut store, &file, &actor)?;
            for problem in &report.problems {
                eprintln!("{}", show(&problem.to_string()));
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
            let store = service::open_existing_store(settings, db.as_deref())?;
            let assets = service::asset_list(&store)?;
            if format != Format::Table {
                return print_json_rows(&assets, format).map(|_| ExitCode::SUCCESS);
            }
            let mut table = Table::new(vec![
                Column::left("CIDR", 43),
                Column::left("NAME", 40),
                Column::left("UPDATED", 0),
            ]);
            for asset in &assets {
                table.row(vec![asset.cidr.clone(), asset.name.clone(), asset.updated_at.clone()]);
            }
            print!("{}", table.render());
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Args)]
pub struct ChangesArgs {
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Only changes of policies, remarks, assets or the rule set.
    #[arg(long, value_parser = ["policy", "remark", "asset", "rules"])]
    pub subject: Option<String>,
    /// Only changes by this actor.
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn changes_command(settings: &Settings, args: ChangesArgs) -> Result<ExitCode> {
    let ChangesArgs {
        db,
        subject,
        actor,
        limit,
        format,
    } = args;
    use trailwarden::alarm::changes::{ChangeFilter, Subject};
    let store = service::open_existing_store(settings, db.as_deref())?;
    let filter = ChangeFilter {
        subject: subject.as_deref().and_then(Subject::parse),
        subject_id: None,
        actor,
        limit,
    };
    let changes = service::list_changes(&store, &filter)?;
    if format != Format::Table {
        return print_json_rows(&changes, format).map(|_| ExitCode::SUCCESS);
    }
    let mut table = Table::new(vec![
        Column::right("ID", 10),
        Column::left("AT", 24),
        Column::left("ACTOR", 32),
        Column::left("VIA", 40),
        Column::left("SUBJECT", 20),
        Column::left("ACTION", 8),
        Column::left("DETAIL", 0),
    ]);
    for change in &changes {
        table.row(vec![
            change.id.to_string(),
            change.at.clone(),
            change.actor.clone(),
            change.via.clone(),
            format!("{} {}", change.subject.as_str(), change.subject_id),
            change.action.clone(),
            change.detail.to_string(),
        ]);
    }
    if !changes.is_empty() {
        print!("{}", table.render());
    }
    if changes.is_empty() {
        println!("no changes recorded");
    }
    Ok(ExitCode::SUCCESS)
}
