//! Where the tests find things: the repository, its fixtures, rules and
//! examples, and the datasets in `../shared` beside the checkout.
//!
//! The relative paths are relative to the repository, which is the working
//! directory `cargo test` gives integration tests; they stay relative on
//! purpose, because origins (`file:line`) in golden files and messages name
//! the path as it was given.

use std::path::PathBuf;

/// Recorded sample records, one cloud, container or quirk per file.
pub const RECORDS: &str = "tests/fixtures/records";
/// The expected normalized output of every fixture file.
pub const GOLDEN: &str = "tests/fixtures/golden";
/// Datasets shared with the other projects of the workspace, beside the checkout.
pub const SHARED_DATASETS: &str = "../shared/datasets";

/// The repository (the crate's root).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped rule pack.
pub fn rules_dir() -> PathBuf {
    repo().join("rules")
}

/// The bundled example traces.
pub fn examples_dir() -> PathBuf {
    repo().join("examples")
}

/// A fixture record file, as the relative path the tests pass to the binary.
pub fn record(name: &str) -> String {
    format!("{RECORDS}/{name}")
}

/// A dataset in `../shared/datasets`, as a relative path.
pub fn shared_dataset(name: &str) -> String {
    format!("{SHARED_DATASETS}/{name}")
}
