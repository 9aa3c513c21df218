//! Workflow storage and node state in SQLite. Single writes, and read-modify-writes, read and
//! check the caps in the same transaction as they write (the one writer connection serializes
//! them); batches are applied write by write, in order, skipping flows that no longer exist.

use super::docs::{execute, select, Sqlite};
use super::SqliteStore;
use crate::shared::documents::parse_doc;
use crate::shared::sql::ResultRow;
use crate::shared::storage::{
    delete_sql, entries_sql, entry_size_sql, metadata_from, metadata_sql, upsert_sql, value_sql,
    Modification,
};
use crate::{
    StorageCaps, StorageMetadata, StorageSpace, StorageStore, StorageUpdate, StorageWrite,
    StoreResult,
};
use async_trait::async_trait;
use rusqlite::Connection;
use serde_json::{Map, Value};

fn metadata(conn: &Connection, flow_id: &str) -> StoreResult<StorageMetadata> {
    let rows = select(conn, &metadata_sql::<Sqlite>(flow_id), |row| {
        Ok(metadata_from(row.int(0)?, row.int(1)?))
    })?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

fn entries(
    conn: &Connection,
    space: StorageSpace,
    flow_id: &str,
) -> StoreResult<Map<String, Value>> {
    let rows = select(conn, &entries_sql::<Sqlite>(space, flow_id), |row| {
        Ok((row.text(0)?, parse_doc(&row.text(1)?)?))
    })?;
    Ok(rows.into_iter().collect())
}

#[async_trait]
impl StorageStore for SqliteStore {
    async fn storage_entries(&self, flow_id: &str) -> StoreResult<Map<String, Value>> {
        let flow_id = flow_id.to_owned();
        self.read(move |conn| entries(conn, StorageSpace::Storage, &flow_id))
            .await
    }

    async fn storage_get(&self, flow_id: &str, key: &str) -> StoreResult<Option<Value>> {
        let query = value_sql::<Sqlite>(StorageSpace::Storage, flow_id, key, false);
        self.read(move |conn| {
            let found = select(conn, &query, |row| row.text(0))?;
            found.first().map(|json| parse_doc(json)).transpose()
        })
        .await
    }

    async fn storage_modify(
        &self,
        flow_id: &str,
        key: &str,
        space: StorageSpace,
        update: StorageUpdate,
        caps: StorageCaps,
    ) -> StoreResult<Option<Value>> {
        let (flow_id, key) = (flow_id.to_owned(), key.to_owned());
        self.write(move |tx| {
            let exists = tx
                .prepare_cached("SELECT 1 FROM flows WHERE id = ?1")?
                .exists([&flow_id])?;
            let current = select(
                tx,
                &value_sql::<Sqlite>(space, &flow_id, &key, true),
                |row| row.text(0),
            )?;
            let modification = Modification::decide::<Sqlite>(
                space,
                &flow_id,
                &key,
                exists,
                current.into_iter().next(),
                update,
            )?;
            if modification.counts_against_caps() {
                modification.check_caps(&key, metadata(tx, &flow_id)?, caps)?;
            }
            if let Some(write) = &modification.write {
                execute(tx, write)?;
            }
            Ok(modification.after)
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
            let replaced = select(tx, &entry_size_sql::<Sqlite>(&flow_id, &key), |row| {
                row.int(0)
            })?;
            let replaced = replaced.first().map(|size| (*size).max(0) as u64);
            caps.check(current, replaced, &key, &value_json)?;
            execute(
                tx,
                &upsert_sql::<Sqlite>(StorageSpace::Storage, &flow_id, &key, &value_json),
            )?;
            Ok(())
        })
        .await
    }

    async fn storage_delete(&self, flow_id: &str, key: &str) -> StoreResult<bool> {
        let (flow_id, key) = (flow_id.to_owned(), key.to_owned());
        self.write(move |tx| {
            Ok(execute(
                tx,
                &delete_sql::<Sqlite>(StorageSpace::Storage, &flow_id, Some(&key)),
            )? > 0)
        })
        .await
    }

    async fn storage_clear(&self, flow_id: &str) -> StoreResult<()> {
        let flow_id = flow_id.to_owned();
        self.write(move |tx| {
            execute(
                tx,
                &delete_sql::<Sqlite>(StorageSpace::Storage, &flow_id, None),
            )?;
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
        self.read(move |conn| entries(conn, StorageSpace::NodeState, &flow_id))
            .await
    }
}
