//! `generate`: a synthetic corpus of all three clouds for benchmarks and demos.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use trailwarden::config::Settings;

#[derive(Args)]
pub struct GenerateArgs {
    /// Number of records.
    #[arg(long, default_value_t = 10_000)]
    pub events: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Days the corpus spans (from --start).
    #[arg(long, default_value_t = 7)]
    pub days: i64,
    /// When the corpus starts: RFC 3339, a UTC date, or a duration ago (`365d`).
    #[arg(long, value_name = "TIME", default_value = "2026-03-02")]
    pub start: String,
    /// One planted attack scenario per this many records (0 = none).
    #[arg(long, default_value_t = 200)]
    pub attack_every: usize,
    /// Distinct access keys of ordinary traffic.
    #[arg(long, default_value_t = 60)]
    pub distinct_keys: usize,
    /// Distinct source IPs of ordinary traffic.
    #[arg(long, default_value_t = 40)]
    pub distinct_ips: usize,
    /// Write JSON lines to this file (`-` for stdout).
    #[arg(long, value_name = "FILE", conflicts_with = "dir")]
    pub out: Option<String>,
    /// Write a directory in the clouds' delivery layouts (gzip, Records, arrays …).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// With --dir: how much time each file covers (default: the clouds' own
    /// delivery intervals, one hour or five minutes).
    #[arg(long, value_name = "DURATION", requires = "dir")]
    pub file_span: Option<humantime::Duration>,
}

pub fn generate(_settings: &Settings, args: GenerateArgs) -> Result<ExitCode> {
    let GenerateArgs {
        events,
        seed,
        days,
        start,
        attack_every,
        distinct_keys,
        distinct_ips,
        out,
        dir,
        file_span,
    } = args;
    let start = trailwarden::service::parse_time_arg("--start", &start, chrono::Utc::now())?;
    let options = trailwarden::synth::SynthOptions {
        start,
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
