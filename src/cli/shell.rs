//! `completions SHELL` and `man DIR`: shell completions and manual pages,
//! generated from the command definitions, so they never drift from them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};

#[derive(Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// Where the pages go: trailwarden.1 and one per command (trailwarden-store-prune.1 …).
    pub dir: PathBuf,
}

pub fn completions(args: CompletionsArgs) -> Result<ExitCode> {
    let mut command = super::Cli::command();
    clap_complete::generate(args.shell, &mut command, "trailwarden", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: ManArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    clap_mangen::generate_to(super::Cli::command(), &args.dir)
        .with_context(|| format!("writing manual pages to {}", args.dir.display()))?;
    let pages = std::fs::read_dir(&args.dir)
        .with_context(|| format!("listing {}", args.dir.display()))?
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "1"))
        })
        .count();
    println!("{pages} manual pages in {}", args.dir.display());
    Ok(ExitCode::SUCCESS)
}
