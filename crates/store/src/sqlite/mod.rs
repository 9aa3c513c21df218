//! The embedded SQLite store.
//!
//! One database file, `flowd.db`, in the data dir, in WAL mode with foreign keys on. Writes go
//! through a single connection (SQLite allows one writer at a time; queueing on a mutex beats
//! retrying on `SQLITE_BUSY`); reads use a small set of read connections, which WAL lets run
//! beside the writer. Every call runs on tokio's blocking pool.
//!
//! The file stays bounded under steady load: retention deletes old run history, the database is
//! in `auto_vacuum = INCREMENTAL` mode so the pages that frees go back to the file system (see
//! [`release_free_pages`]), and the WAL is cut back to [`WAL_SIZE_LIMIT`] after checkpoints.

mod accounting;
mod applications;
mod docs;
mod flows;
mod migrations;
mod resources;
mod storage;
mod tokens;
mod versions;

use crate::{Store, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How many read connections are kept open. Two cores here; a few more than cores lets reads
/// wait on I/O without queueing.
const READ_CONNECTIONS: usize = 4;

/// Bytes the WAL file is truncated to after a checkpoint (it would otherwise stay as large as
/// the biggest burst of writes ever made it).
const WAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

/// Free pages kept in the file, as a fraction of it, for the inserts that follow a retention
/// sweep; beyond that they are released.
const KEEP_FREE_FRACTION: i64 = 10;

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Puts the database in incremental auto-vacuum mode. A new file takes the setting before its
/// first table; a file made by an older flowd needs one full `VACUUM` (once).
fn enable_incremental_vacuum(conn: &Connection) -> rusqlite::Result<()> {
    const INCREMENTAL: i64 = 2;
    let mode: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    if mode == INCREMENTAL {
        return Ok(());
    }
    conn.pragma_update(None, "auto_vacuum", INCREMENTAL)?;
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    if pages > 0 {
        tracing::info!(
            pages,
            "converting the database to incremental vacuum (once)"
        );
        conn.execute_batch("VACUUM")?;
    }
    Ok(())
}

/// Gives the file system back the free pages beyond [`KEEP_FREE_FRACTION`] of the file, so a
/// retention sweep shrinks the file instead of leaving it at its high-water mark.
pub(crate) fn release_free_pages(conn: &Connection) -> rusqlite::Result<i64> {
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    let release = free - pages / KEEP_FREE_FRACTION;
    if release <= 0 {
        return Ok(0);
    }
    // `incremental_vacuum` returns a row per page freed; stepping through them does the work.
    let mut statement = conn.prepare(&format!("PRAGMA incremental_vacuum({release})"))?;
    let mut rows = statement.query([])?;
    while rows.next()?.is_some() {}
    Ok(release)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = migrations::MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::Backend(format!(
            "the database is at schema version {current}, newer than this flowd knows ({known}); \
             upgrade flowd"
        )));
    }
    for (index, sql) in migrations::MIGRATIONS
        .iter()
        .enumerate()
        .skip(current as usize)
    {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "applied store migration");
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `flowd.db` in `data_dir` and brings its schema up to date.
    pub async fn open(data_dir: &Path) -> StoreResult<Self> {
        let path = data_dir.join("flowd.db");
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    fn open_blocking(path: PathBuf) -> StoreResult<Self> {
        let mut writer = Connection::open(&path)?;
        enable_incremental_vacuum(&writer)?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let readers = (0..READ_CONNECTIONS)
            .map(|_| {
                let conn = Connection::open(&path)?;
                configure(&conn)?;
                Ok(conn)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(readers),
            }),
        })
    }

    /// Runs `f` with a read connection on the blocking pool.
    pub(crate) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut r| r.pop());
            let conn = match pooled {
                Some(conn) => conn,
                None => {
                    // All busy: open another for this call rather than wait.
                    let conn = Connection::open(&inner.path)?;
                    configure(&conn)?;
                    conn
                }
            };
            let result = f(&conn);
            if let Ok(mut readers) = inner.readers.lock() {
                if readers.len() < READ_CONNECTIONS {
                    readers.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    /// Runs `f` inside a write transaction on the blocking pool; commits when it returns `Ok`.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .writer
                .lock()
                .map_err(|_| StoreError::Backend("writer connection poisoned".into()))?;
            let tx = conn.transaction()?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) -> StoreResult<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            if let Ok(mut readers) = inner.readers.lock() {
                readers.clear();
            }
            let conn = inner
                .writer
                .lock()
                .map_err(|_| StoreError::Backend("writer connection poisoned".into()))?;
            // Fold the WAL back into the database so the data dir is one self-contained file.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}
