//! Which store flowd opens (`--store`, `FLOWD_STORE`, `store =` in the config file): SQLite in
//! the data dir (the default, `sqlite`), or a PostgreSQL database given by its URL, which
//! several flowd processes can share.

use crate::config::ConfigError;
use flowd_store::postgres::PostgresStore;
use flowd_store::sqlite::SqliteStore;
use flowd_store::{Store, StoreResult};
use std::path::Path;
use std::sync::Arc;

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreLocation {
    /// `flowd.db` in the data dir.
    #[default]
    Sqlite,
    /// A PostgreSQL URL (`postgres://…` or `postgresql://…`; a schema can be chosen with
    /// `?options=-c%20search_path%3DNAME`).
    Postgres(String),
}

impl StoreLocation {
    /// `None` and `sqlite` are SQLite; a `postgres://` or `postgresql://` URL is PostgreSQL.
    pub fn parse(value: Option<&str>) -> Result<StoreLocation, ConfigError> {
        match value.map(str::trim) {
            None | Some("sqlite") => Ok(StoreLocation::Sqlite),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(StoreLocation::Postgres(url.to_owned()))
            }
            Some(other) => Err(ConfigError::Invalid(format!(
                "store must be sqlite or a PostgreSQL URL (postgres://… or postgresql://…), \
                 not {:?}",
                without_password(other)
            ))),
        }
    }

    /// Opens the store (SQLite in `data_dir`), bringing its schema up to date.
    pub async fn open(&self, data_dir: &Path) -> StoreResult<Arc<dyn Store>> {
        Ok(match self {
            StoreLocation::Sqlite => Arc::new(SqliteStore::open(data_dir).await?),
            StoreLocation::Postgres(url) => Arc::new(PostgresStore::connect(url).await?),
        })
    }

    /// What to say in logs: `sqlite`, or `postgres` (a URL may hold a password).
    pub fn kind(&self) -> &'static str {
        match self {
            StoreLocation::Sqlite => "sqlite",
            StoreLocation::Postgres(_) => "postgres",
        }
    }
}

/// A value as it may be shown: a `user:password@` in it becomes `user:…@`.
fn without_password(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:…@{host}")
        }
        _ => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_and_postgres_urls_are_accepted() {
        assert_eq!(StoreLocation::parse(None).unwrap(), StoreLocation::Sqlite);
        assert_eq!(
            StoreLocation::parse(Some("sqlite")).unwrap(),
            StoreLocation::Sqlite
        );
        for url in ["postgres://u@h/db", "postgresql://u@h:5432/db?options=x"] {
            assert_eq!(
                StoreLocation::parse(Some(url)).unwrap(),
                StoreLocation::Postgres(url.into())
            );
        }
    }

    #[test]
    fn anything_else_is_refused_by_name_without_its_password() {
        for (value, shown) in [
            ("mysql://root:secret@db/x", "mysql://root:…@db/x"),
            ("SQLite", "SQLite"),
            ("", ""),
        ] {
            let message = StoreLocation::parse(Some(value)).unwrap_err().to_string();
            assert!(message.contains(&format!("{shown:?}")), "{message}");
            assert!(message.contains("postgres://"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }
}
