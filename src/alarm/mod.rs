//! Alarms: aggregation of rule matches and the SQLite store that keeps them.

pub mod aggregate;
pub mod rollup;
pub mod schema;
pub mod store;

pub use aggregate::Aggregator;
pub use store::{AlarmFilter, Store, StoreError, StoreOptions, WriteBatch};
