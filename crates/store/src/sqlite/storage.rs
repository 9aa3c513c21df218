use super::docs::parse_doc;
use super::SqliteStore;
use crate::{StorageCaps, StorageMetadata, StorageStore, StorageWrite, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Map, Value};

/// Byte counts come from BLOB casts: SQLite's `length()` of TEXT counts characters.
fn metadata(conn: &Connection, flow_id: &str) -> StoreResult<StorageMetadata> {
    let (bytes, keys): (i64, i64) = conn.query_row(
        "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0), COUNT(*) \
         FROM storage_entries WHERE flow_id = ?1",
        [flow_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(StorageMetadata {
        memory_used: bytes.max(0) as u64,
        keys_count: keys.max(0) as u64,
    })
}

#[async_trait]
impl StorageStore for SqliteStore {
    async fn storage_entries(&self, flow_id: &str) -> StoreResult<Map<String, Value>> {
        let flow_id = flow_id.to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare(
                "SELECT key, value FROM storage_entries WHERE flow_id = ?1 ORDER BY key",
            )?;
            let rows = statement.query_map([flow_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut entries = Map::new();
            for row in rows {
                let (key, value) = row?;
                entries.insert(key, parse_doc(&value)?);
            }
            Ok(entries)
        })
        .await
    }

    async fn storage_metadata(&self, flow_id: &str) -> StoreResult<StorageMetadata> {
        let flow_id = flow_id.to_owned();
        self.read(move |conn| metadata(conn, &flow_id)).await
    }

    async fn storage_set(
        &self,
        flow_id: &str,
        key: &str,
        value_json: &str,
        caps: StorageCaps,
    ) -> StoreResult<()> {
        let (flow_id, key, value_json) =
            (flow_id.to_owned(), key.to_owned(), value_json.to_owned());
        self.write(move |tx| {
            let current = metadata(tx, &flow_id)?;
            let old_size: Option<i64> = tx
                .query_row(
                    "SELECT length(CAST(key AS BLOB)) + length(CAST(value AS BLOB)) FROM storage_entries \
                     WHERE flow_id = ?1 AND key = ?2",
                    [&flow_id, &key],
                    |r| r.get(0),
                )
                .optional()?;
            let new_size = (key.len() + value_json.len()) as u64;
            let keys_after = current.keys_count + u64::from(old_size.is_none());
            let bytes_after =
                current.memory_used - old_size.unwrap_or(0).max(0) as u64 + new_size;
            if keys_after > caps.max_keys {
                return Err(StoreError::LimitExceeded(format!(
                    "workflow storage is limited to {} keys",
                    caps.max_keys
                )));
            }
            if bytes_after > caps.max_bytes {
                return Err(StoreError::LimitExceeded(format!(
                    "workflow storage is limited to {} bytes (keys plus JSON values); this write \
                     would make it {bytes_after}",
                    caps.max_bytes
                )));
            }
            tx.execute(
                "INSERT INTO storage_entries (flow_id, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (flow_id, key) DO UPDATE SET value = excluded.value",
                [&flow_id, &key, &value_json],
            )?;
            Ok(())
        })
        .await
    }

    async fn storage_delete(&self, flow_id: &str, key: &str) -> StoreResult<bool> {
        let (flow_id, key) = (flow_id.to_owned(), key.to_owned());
        self.write(move |tx| {
            Ok(tx.execute(
                "DELETE FROM storage_entries WHERE flow_id = ?1 AND key = ?2",
                [flow_id, key],
            )? > 0)
        })
        .await
    }

    async fn storage_clear(&self, flow_id: &str) -> StoreResult<()> {
        let flow_id = flow_id.to_owned();
        self.write(move |tx| {
            tx.execute("DELETE FROM storage_entries WHERE flow_id = ?1", [flow_id])?;
            Ok(())
        })
        .await
    }

    async fn storage_apply(&self, batch: &[StorageWrite]) -> StoreResult<()> {
        let batch = batch.to_vec();
        self.write(move |tx| {
            let mut set = tx.prepare_cached(
                "INSERT INTO storage_entries (flow_id, key, value) \
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM flows WHERE id = ?1) \
                 ON CONFLICT (flow_id, key) DO UPDATE SET value = excluded.value",
            )?;
            let mut delete =
                tx.prepare_cached("DELETE FROM storage_entries WHERE flow_id = ?1 AND key = ?2")?;
            let mut clear = tx.prepare_cached("DELETE FROM storage_entries WHERE flow_id = ?1")?;
            let mut node_state = tx.prepare_cached(
                "INSERT INTO node_state (flow_id, key, value) \
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM flows WHERE id = ?1) \
                 ON CONFLICT (flow_id, key) DO UPDATE SET value = excluded.value",
            )?;
            for write in &batch {
                match write {
                    StorageWrite::Set {
                        flow_id,
                        key,
                        value_json,
                    } => {
                        set.execute([flow_id, key, value_json])?;
                    }
                    StorageWrite::Delete { flow_id, key } => {
                        delete.execute([flow_id, key])?;
                    }
                    StorageWrite::Clear { flow_id } => {
                        clear.execute([flow_id])?;
                    }
                    StorageWrite::SetNodeState {
                        flow_id,
                        key,
                        value_json,
                    } => {
                        node_state.execute([flow_id, key, value_json])?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn node_states(&self, flow_id: &str) -> StoreResult<Map<String, Value>> {
        let flow_id = flow_id.to_owned();
        self.read(move |conn| {
            let mut statement =
                conn.prepare("SELECT key, value FROM node_state WHERE flow_id = ?1")?;
            let rows = statement.query_map([flow_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut states = Map::new();
            for row in rows {
                let (key, value) = row?;
                states.insert(key, parse_doc(&value)?);
            }
            Ok(states)
        })
        .await
    }
}
