//! `notify topics | test | deliveries | resend`: notification topics and the
//! delivery outbox.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use trailwarden::config::Settings;
use trailwarden::service;
use trailwarden::terminal::{Column, Table, show};

use super::Format;

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// List notification deliveries, newest first.
    Deliveries {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Only deliveries given up (permanent error, or past `notify.max_age`).
        #[arg(long, conflicts_with = "status")]
        failed: bool,
        /// pending, delivered, failed or folded (into a digest).
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        #[arg(long, value_name = "NAME")]
        topic: Option<String>,
        #[arg(long, value_name = "ID")]
        alarm: Option<i64>,
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Queue failed deliveries again, with their delivery ids (a running daemon sends them).
    Resend {
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// Delivery row ids (the first column of `notify deliveries`).
        #[arg(value_name = "ID", required_unless_present = "all_failed")]
        ids: Vec<i64>,
        /// Every failed delivery.
        #[arg(long, conflicts_with = "ids")]
        all_failed: bool,
    },
    /// Send a sample alarm through every subscription of TOPIC now, and report each result.
    Test {
        #[arg(value_name = "TOPIC")]
        topic: String,
    },
    /// The configured topics, their filters and subscriptions (secrets hidden).
    Topics,
}

pub fn notify_command(settings: &Settings, command: NotifyCommand) -> Result<ExitCode> {
    use trailwarden::notify::outbox;
    match command {
        NotifyCommand::Deliveries {
            db,
            failed,
            status,
            topic,
            alarm,
            limit,
            format,
        } => {
            let status = if failed { Some("failed".to_string()) } else { status };
            if let Some(status) = &status
                && !service::DELIVERY_STATUSES.contains(&status.as_str())
            {
                anyhow::bail!(
                    "--status {status}: expected one of {}",
                    service::DELIVERY_STATUSES.join(", ")
                );
            }
            let store = service::open_existing_store(settings, db.as_deref())?;
            let rows = service::list_deliveries(
                &store,
                &service::DeliveryFilter {
                    id: None,
                    status,
                    topic,
                    alarm_id: alarm,
                    limit,
                },
            )?;
            match format {
                Format::Table => {
                    let mut table = Table::new(vec![
                        Column::right("ID", 10),
                        Column::left("STATUS", 9),
                        Column::left("KIND", 9),
                        Column::left("TOPIC/SUBSCRIPTION", 40),
                        Column::left("CHANNEL", 7),
                        Column::right("ALARM", 10),
                        Column::right("TRY", 5),
                        Column::left("DELIVERY ID", 40),
                        Column::left("LAST ERROR / DELIVERED", 0),
                    ]);
                    for row in &rows {
                        let detail = match row.status.as_str() {
                            "delivered" => row.delivered_at.clone().unwrap_or_default(),
                            "pending" => format!(
                                "next {}{}",
                                row.next_attempt_at.as_deref().unwrap_or("-"),
                                row.last_error
                                    .as_deref()
                                    .map(|error| format!(" · {error}"))
                                    .unwrap_or_default()
                            ),
                            "folded" => row
                                .digest_message
                                .map(|digest| format!("in digest message {digest}"))
                                .unwrap_or_else(|| "waiting for the next digest".into()),
                            _ => row.last_error.clone().unwrap_or_default(),
                        };
                        table.row(vec![
                            row.id.to_string(),
                            row.status.clone(),
                            row.kind.clone(),
                            format!("{}/{}", row.topic, row.subscription),
                            row.channel.clone(),
                            row.alarm_id.map(|id| id.to_string()).unwrap_or_else(|| "-".into()),
                            row.attempts.to_string(),
                            row.delivery_id.clone(),
                            detail,
                        ]);
                    }
                    print!("{}", table.render());
                }
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Jsonl => {
                    for row in &rows {
                        println!("{}", serde_json::to_string(row)?);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        NotifyCommand::Resend { db, ids, all_failed } => {
            let mut store = service::open_existing_store(settings, db.as_deref())?;
            let (requeued, outcomes) = service::resend_deliveries(&mut store, &ids, all_failed)?;
            let mut code = ExitCode::SUCCESS;
            for (id, outcome) in &outcomes {
                if *outcome != service::Resent::Queued {
                    match outcome {
                        service::Resent::NotFailed(status) => {
                            eprintln!("delivery {id} is {status}, not failed: left as it is")
                        }
                        _ => eprintln!("delivery {id} does not exist"),
                    }
                    code = ExitCode::from(1);
                }
            }
            println!(
                "{} deliver{} queued again; a running daemon sends {} within `notify.poll_interval`",
                requeued.len(),
                if requeued.len() == 1 { "y" } else { "ies" },
                if requeued.len() == 1 { "it" } else { "them" }
            );
            Ok(code)
        }
        NotifyCommand::Test { topic } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let results = runtime.block_on(trailwarden::notify::worker::send_test(&settings.notify, &topic))?;
            let mut failed = 0;
            for (subscription, outcome) in &results {
                match outcome {
                    outbox::Outcome::Delivered { status } => println!(
                        "ok      {}{}",
                        show(subscription),
                        status.map(|code| format!(" ({code})")).unwrap_or_default()
                    ),
                    outbox::Outcome::Failed { error, .. } => {
                        failed += 1;
                        // The error quotes what the remote server answered.
                        println!("FAILED  {}: {}", show(subscription), show(&error.to_string()));
                    }
                    outbox::Outcome::Deferred { .. } => {}
                }
            }
            println!(
                "{} of {} subscription(s) of topic {topic} received the sample alarm",
                results.len() - failed,
                results.len()
            );
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        NotifyCommand::Topics => {
            let notify = &settings.notify;
            if notify.topics.is_empty() {
                println!("no topics configured ([[notify.topics]] in {})", settings.origin);
            }
            for topic in &notify.topics {
                let mut on = Vec::new();
                if topic.on_opened {
                    on.push("opened");
                }
                if topic.on_escalated {
                    on.push("escalated");
                }
                if topic.on_status {
                    on.push("status");
                }
                if topic.on_policy {
                    on.push("policy");
                }
                println!(
                    "{}: level >= {}, rules {}, tags {}, accounts {}, on {}, rate limit {}",
                    show(&topic.name),
                    topic.min_level,
                    show(&list_or_any(&topic.rules)),
                    show(&list_or_any(&topic.tags)),
                    show(&list_or_any(&topic.accounts)),
                    on.join("/"),
                    if topic.rate_limit == 0 {
                        "none".to_string()
                    } else {
                        format!(
                            "{} per {} (digest every {})",
                            topic.rate_limit,
                            humantime::format_duration(topic.rate_window),
                            humantime::format_duration(topic.digest_interval)
                        )
                    }
                );
                for subscription in &topic.subscriptions {
                    match &subscription.target {
                        trailwarden::notify::Target::Email { to } => {
                            println!("  {}  email  {}", show(&subscription.name), show(&to.join(", ")))
                        }
                        trailwarden::notify::Target::Webhook(hook) => println!(
                            "  {}  webhook  {}  {}{}",
                            show(&subscription.name),
                            hook.format.as_str(),
                            show(&trailwarden::notify::config::redact_url(&hook.url)),
                            if hook.secret.is_some() { "  (signed)" } else { "" }
                        ),
                    }
                }
            }
            if !notify.enabled {
                println!("notify.enabled = false: nothing is queued or sent");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn list_or_any(values: &[String]) -> String {
    if values.is_empty() {
        "any".to_string()
    } else {
        values.join(",")
    }
}
