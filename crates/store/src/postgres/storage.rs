//! Workflow storage and node state in PostgreSQL. A single write checks the caps and writes in
//! one transaction, holding a lock on the flow's row, so that concurrent writers to one flow
//! cannot both take its last free slot. A batch is reduced to what it leaves behind
//! ([`StoragePlan`]) and written a table at a time: a statement each for clears, deletes,
//! entries and node states, however many writes the batch holds.

use super::docs::{execute, select, Postgres};
use super::{existing_flows, lock_flow, PostgresStore};
use crate::shared::documents::parse_doc;
use crate::shared::sql::ResultRow;
use crate::shared::storage::{
    check_caps, delete_sql, entries_sql, entry_size_sql, flows_written, metadata_from,
    metadata_sql, upsert_sql, EntryTable, StoragePlan,
};
use crate::{StorageCaps, StorageMetadata, StorageStore, StorageWrite, StoreResult};
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
    async fn entries(&self, table: EntryTable, flow_id: &str) -> StoreResult<Map<String, Value>> {
        let query = entries_sql::<Postgres>(table, flow_id);
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
    table: EntryTable,
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
            table.name()
        ))
        .await?;
    tx.execute(&statement, &[&flows, &keys, &values]).await?;
    Ok(())
}

#[async_trait]
impl StorageStore for PostgresStore {
    async fn storage_entries(&self, flow_id: &str) -> StoreResult<Map<String, Value>> {
        self.entries(EntryTable::Storage, flow_id).await
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
        check_caps(current, replaced, key, value_json, caps)?;
        execute(
            &tx,
            &upsert_sql::<Postgres>(EntryTable::Storage, flow_id, key, value_json),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn storage_delete(&self, flow_id: &str, key: &str) -> StoreResult<bool> {
        let query = delete_sql::<Postgres>(flow_id, Some(key));
        Ok(execute(&self.client().await?, &query).await? > 0)
    }

    async fn storage_clear(&self, flow_id: &str) -> StoreResult<()> {
        execute(
            &self.client().await?,
            &delete_sql::<Postgres>(flow_id, None),
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
        upsert_all(&tx, EntryTable::Storage, &plan.set).await?;
        upsert_all(&tx, EntryTable::NodeState, &plan.node_states).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn node_states(&self, flow_id: &str) -> StoreResult<Map<String, Value>> {
        self.entries(EntryTable::NodeState, flow_id).await
    }
}
