//! trailwarden: a streaming detection daemon for cloud audit logs.
//!
//! Records from Huawei Cloud CTS, Tencent Cloud CloudAudit and AWS CloudTrail
//! are decoded and normalized into one `AuditEvent`, evaluated against YAML
//! rules, and aggregated into alarms in SQLite. The binary (`src/main.rs`) is
//! a thin CLI over this library.

pub mod alarm;
pub mod api;
pub mod config;
pub mod daemon;
pub mod db;
pub mod error;
pub mod event;
#[doc(hidden)]
pub mod fuzz;
pub mod geoip;
pub mod iplists;
pub mod mask;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod options;
pub mod pipeline;
pub mod reload;
pub mod reorder;
pub mod replay;
pub mod rules;
pub mod ruleset;
pub mod service;
pub mod source;
pub mod synth;
pub mod terminal;
pub mod text;
pub mod time;
pub mod tls;
