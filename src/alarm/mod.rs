//! Alarms: aggregation of rule matches and the SQLite store that keeps them,
//! allowlist policies, remarks and assets, and the masked views for output.

pub mod aggregate;
pub mod allowlist;
pub mod assets;
pub mod chain;
pub mod changes;
pub mod copy;
pub mod events;
pub mod inventory;
pub mod investigate;
pub mod observer;
pub mod restore;
pub mod retention;
pub mod rollup;
pub mod rule_changes;
pub mod sample;
pub mod schema;
pub mod schema_pg;
pub mod seal;
pub mod store;
pub mod view;
pub mod workflow;

pub use aggregate::Aggregator;
pub use store::{AlarmFilter, Store, StoreError, StoreOptions, WriteBatch};
