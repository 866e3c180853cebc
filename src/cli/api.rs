//! `api new-token | hash-token`: HTTP API tokens.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ApiCommand {
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

pub fn api_command(command: ApiCommand) -> Result<ExitCode> {
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
