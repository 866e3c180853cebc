//! Helpers shared by the integration tests, one module per concern:
//!
//! - `paths`: the repository, its fixtures, rules and examples, `../shared`;
//! - `net`: a free port, waiting for a condition, an HTTP/1.1 client;
//! - `binary`: the binary under test — configuration builder, command line,
//!   a test's temporary directory, a running daemon;
//! - `records`: JSON lines in and out, the fixtures' time zone;
//! - `kafka`: the Kafka tests' corpus, producer and store fingerprints
//!   (`use common::kafka::*`; not re-exported here);
//! - `mmdb`: a small MaxMind DB writer and the test GeoIP databases;
//! - `tansu`: a Kafka-protocol broker (`use common::tansu::Broker`);
//! - `pg_cluster`: a throw-away PostgreSQL cluster (`use common::pg_cluster::Postgres`);
//! - `smtp`: a real SMTP server writing what it accepts to a directory (`use common::smtp::SmtpSink`);
//! - `webhook`: a real HTTP server recording webhook deliveries (`use common::webhook::Receiver`).
//!
//! Each test file has `mod common;` and uses what it needs.

// Every test binary compiles all of this and uses a part: unused helpers and
// re-exports are expected there, not dead.
#![allow(dead_code, unused_imports)]

pub mod binary;
pub mod kafka;
pub mod mmdb;
pub mod net;
pub mod paths;
pub mod pg_cluster;
pub mod records;
pub mod smtp;
pub mod tansu;
pub mod webhook;

pub use binary::*;
pub use mmdb::*;
pub use net::*;
pub use paths::*;
pub use records::*;
