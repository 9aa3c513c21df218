//! Workflow storage and node state in PostgreSQL. A single write checks the caps and writes in
//! one transaction, holding a lock on the flow's row, so that concurrent writers to one flow
//! cannot both take its last free slot. A read-modify-write also locks the entry's row
//! (`SELECT … FOR UPDATE`), so that writes which do not lock the flow (deletes, clears,
//! batches) cannot come between its read and its write either. A batch is reduced to what it leaves behind
//! ([`StoragePlan`]) and written a table at a time: a statement each for clears, deletes,
//! entries and node states, however many writes the batch holds.

use super::docs::{execute, select, Postgres};
use super::{existing_flows, lock_flow, PostgresStore};
use crate::shared::documents::parse_doc;
use crate::shared::sql::ResultRow;
use crate::shared::storage::{
    delete_sql, entries_sql, entry_size_sql, flows_written, metadata_from, metadata_sql,
    upsert_sql, value_sql, Modification, StoragePlan,
};
use crate::{
    StorageCaps, StorageMetadata, StorageSpace, StorageStore, StorageUpdate, StorageWrite,
    StoreResult,
};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use serde_json::{Map, Value};

async fn metadata(client: &impl GenericClient, flow_id: &str) -> StoreResult<StorageMetadata> {
    let rows = select(client, &metadata_sql::<Postgres>(flow_id), |row| {
        Ok(metadata_from(row.int(0)?, row.int(1)?))
    })
    .await?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

impl PostgresStore {
    async fn entries(&self, space: StorageSpace, flow_id: &str) -> StoreResult<Map<String, Value>> {
        let query = entries_sql::<Postgres>(space, flow_id);
        let rows = select(&self.client().await?, &query, |row| {
            Ok((row.text(0)?, parse_doc(&row.text(1)?)?))
        })
        .await?;
        Ok(rows.into_iter().collect())
    }
}

/// Upserts (flow, key, value) triples into `table` in one statement.
async fn upsert_all(
    tx: &impl GenericClient,
    space: StorageSpace,
    entries: &[(String, String, String)],
) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let flows: Vec<&str> = entries.iter().map(|(flow, _, _)| flow.as_str()).collect();
    let keys: Vec<&str> = entries.iter().map(|(_, key, _)| key.as_str()).collect();
    let values: Vec<&str> = entries.iter().map(|(_, _, value)| value.as_str()).collect();
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO {} (flow_id, key, value) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
             ON CONFLICT (flow_id, key) DO UPDATE SET value = excluded.value",
            space.table()
        ))
        .await?;
    tx.execute(&statement, &[&flows, &keys, &values]).await?;
    Ok(())
}

#[async_trait]
impl StorageStore for PostgresStore {
    async fn storage_entries(&self, flow_id: &str) -> StoreResult<Map<String, Value>> {
        self.entries(StorageSpace::Storage, flow_id).await
    }

    async fn storage_get(&self, flow_id: &str, key: &str) -> StoreResult<Option<Value>> {
        let query = value_sql::<Postgres>(StorageSpace::Storage, flow_id, key, false);
        let found = select(&self.client().await?, &query, |row| row.text(0)).await?;
        found.first().map(|json| parse_doc(json)).transpose()
    }

    async fn storage_modify(
        &self,
        flow_id: &str,
        key: &str,
        space: StorageSpace,
        update: StorageUpdate,
        caps: StorageCaps,
    ) -> StoreResult<Option<Value>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let exists = lock_flow(&tx, flow_id).await?;
        let current = select(
            &tx,
            &value_sql::<Postgres>(space, flow_id, key, true),
            |row| row.text(0),
        )
        .await?;
        let modification = Modification::decide::<Postgres>(
            space,
            flow_id,
            key,
            exists,
            current.into_iter().next(),
            update,
        )?;
        if modification.counts_against_caps() {
            modification.check_caps(key, metadata(&tx, flow_id).await?, caps)?;
        }
        if let Some(write) = &modification.write {
            execute(&tx, write).await?;
        }
        tx.commit().await?;
        Ok(modification.after)
    }

    async fn storage_metadata(&self, flow_id: &str) -> StoreResult<StorageMetadata> {
        metadata(&self.client().await?, flow_id).await
    }

    async fn storage_set(
        &self,
        flow_id: &str,
        key: &str,
        value_json: &str,
        caps: StorageCaps,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_flow(&tx, flow_id).await?;
        let current = metadata(&tx, flow_id).await?;
        let replaced = select(&tx, &entry_size_sql::<Postgres>(flow_id, key), |row| {
            row.int(0)
        })
        .await?;
        let replaced = replaced.first().map(|size| (*size).max(0) as u64);
        caps.check(current, replaced, key, value_json)?;
        execute(
            &tx,
            &upsert_sql::<Postgres>(StorageSpace::Storage, flow_id, key, value_json),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn storage_delete(&self, flow_id: &str, key: &str) -> StoreResult<bool> {
        let query = delete_sql::<Postgres>(StorageSpace::Storage, flow_id, Some(key));
        Ok(execute(&self.client().await?, &query).await? > 0)
    }

    async fn storage_clear(&self, flow_id: &str) -> StoreResult<()> {
        execute(
            &self.client().await?,
            &delete_sql::<Postgres>(StorageSpace::Storage, flow_id, None),
        )
        .await?;
        Ok(())
    }

    async fn storage_apply(&self, batch: &[StorageWrite]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let live = existing_flows(&tx, &flows_written(batch)).await?;
        let plan = StoragePlan::new(batch, |flow_id| live.contains(flow_id));
        if !plan.clear.is_empty() {
            let statement = tx
                .prepare_cached("DELETE FROM storage_entries WHERE flow_id = ANY($1)")
                .await?;
            tx.execute(&statement, &[&plan.clear]).await?;
        }
        if !plan.delete.is_empty() {
            let flows: Vec<&str> = plan.delete.iter().map(|(flow, _)| flow.as_str()).collect();
            let keys: Vec<&str> = plan.delete.iter().map(|(_, key)| key.as_str()).collect();
            let statement = tx
                .prepare_cached(
                    "DELETE FROM storage_entries AS e \
                     USING unnest($1::text[], $2::text[]) AS d (flow_id, key) \
                     WHERE e.flow_id = d.flow_id AND e.key = d.key",
                )
                .await?;
            tx.execute(&statement, &[&flows, &keys]).await?;
        }
        upsert_all(&tx, StorageSpace::Storage, &plan.set).await?;
        upsert_all(&tx, StorageSpace::NodeState, &plan.node_states).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn node_states(&self, flow_id: &str) -> StoreResult<Map<String, Value>> {
        self.entries(StorageSpace::NodeState, flow_id).await
    }
}
