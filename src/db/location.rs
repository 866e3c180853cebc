//! Where the store is: a SQLite file or a PostgreSQL URL.
//!
//! Every command's `--db` and the config's `store.path` / `store.url` name
//! one; a value starting `postgres://` or `postgresql://` is PostgreSQL,
//! anything else a file.

use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Whether `text` is a PostgreSQL URL.
pub fn is_postgres_url(text: &str) -> bool {
    let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl StoreLocation {
    /// A `--db` value or `store.path`: a URL or a file.
    pub fn from_path(path: &Path) -> StoreLocation {
        match path.to_str() {
            Some(text) if is_postgres_url(text) => StoreLocation::Postgres(text.to_string()),
            _ => StoreLocation::Sqlite(path.to_path_buf()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, StoreLocation::Postgres(_))
    }

    /// For messages and logs: the file, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => path.display().to_string(),
            StoreLocation::Postgres(url) => super::postgres::redact(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_postgres_and_everything_else_a_file() {
        assert!(StoreLocation::from_path(Path::new("postgres://u@h/db")).is_postgres());
        assert!(StoreLocation::from_path(Path::new("PostgreSQL://u@h/db")).is_postgres());
        assert_eq!(
            StoreLocation::from_path(Path::new("data/postgres.db")),
            StoreLocation::Sqlite(PathBuf::from("data/postgres.db"))
        );
        assert_eq!(
            StoreLocation::from_path(Path::new("postgres://u:pw@h/db")).display(),
            "postgres://u:***@h/db"
        );
    }
}
