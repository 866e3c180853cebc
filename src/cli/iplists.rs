//! `trailwarden ip-lists`: the configured address lists, and the lists an address is in.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use trailwarden::config::Settings;
use trailwarden::iplists::IpLists;
use trailwarden::terminal::{Column, Table, show};

#[derive(Args)]
pub struct IpListsArgs {
    /// Addresses to look up.
    #[arg(value_name = "IP")]
    pub ips: Vec<String>,
}

pub fn ip_lists(settings: &Settings, args: IpListsArgs) -> Result<ExitCode> {
    let lists = IpLists::load(&settings.ip_lists);
    if lists.summaries.is_empty() {
        println!("no address lists configured ([ip_lists] in {})", show(&settings.origin));
    }
    let mut table = Table::new(vec![
        Column::left("LIST", 16),
        Column::right("NETWORKS", 9),
        Column::left("FILES", 0),
    ]);
    let mut problems = 0;
    for summary in &lists.summaries {
        table.row(vec![
            summary.name.clone(),
            summary.networks.to_string(),
            summary.files.join(", "),
        ]);
        problems += summary.problems.len();
    }
    if !table.is_empty() {
        print!("{}", table.render());
    }
    for summary in &lists.summaries {
        for problem in &summary.problems {
            eprintln!("{}: {}", summary.name, show(problem));
        }
    }
    for text in &args.ips {
        let Some(ip) = trailwarden::event::lenient::parse_ip(text.trim()) else {
            bail!("{text:?} is not an IP address");
        };
        let names: Vec<&str> = lists.lists_of(ip).collect();
        println!(
            "{ip}: {}",
            if names.is_empty() {
                "in no list".to_string()
            } else {
                names.join(", ")
            }
        );
    }
    Ok(if problems > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
