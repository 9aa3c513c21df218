//! Flow versions in PostgreSQL: the shared `flow_versions` document table, names unique per
//! flow. Inserting looks for a version of the same name first, under a lock on the flow's row,
//! so that concurrent inserts to one flow take turns as on SQLite.

use super::docs::{select, select_docs, DocTableOps, Postgres};
use super::PostgresStore;
use crate::shared::documents::{version_by_id_or_name_sql, version_id_by_name_sql, VERSIONS};
use crate::shared::sql::ResultRow;
use crate::{FlowVersionStore, ListQuery, Page, StoreError, StoreResult};
use async_trait::async_trait;
use serde_json::Value;

#[async_trait]
impl FlowVersionStore for PostgresStore {
    async fn insert_version(&self, doc: &Value, replace: bool) -> StoreResult<()> {
        let field = |name: &str| doc.get(name).and_then(Value::as_str).unwrap_or_default();
        let (flow_id, name) = (field("flowId"), field("version"));
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        super::lock_flow(&tx, flow_id).await?;
        let existing = select(
            &tx,
            &version_id_by_name_sql::<Postgres>(flow_id, name),
            |row| row.text(0),
        )
        .await?;
        match existing.first() {
            Some(_) if !replace => {
                return Err(StoreError::Conflict(format!(
                    "A version named \"{name}\" already exists for this workflow"
                )))
            }
            Some(_) => {
                VERSIONS.update(&tx, doc).await?;
            }
            None => VERSIONS.insert(&tx, doc).await?,
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_version(&self, flow_id: &str, id_or_name: &str) -> StoreResult<Option<Value>> {
        let query = version_by_id_or_name_sql::<Postgres>(flow_id, id_or_name);
        let docs = select_docs(&self.client().await?, &query).await?;
        Ok(docs.into_iter().next())
    }

    async fn update_version(&self, doc: &Value) -> StoreResult<bool> {
        VERSIONS.update(&self.client().await?, doc).await
    }

    async fn delete_version(&self, flow_id: &str, id: &str) -> StoreResult<bool> {
        VERSIONS
            .delete(&self.client().await?, Some(flow_id), id)
            .await
    }

    async fn list_versions(&self, flow_id: &str, query: &ListQuery) -> StoreResult<Page> {
        VERSIONS
            .list(&self.client().await?, Some(flow_id), query, &[])
            .await
    }

    async fn all_versions(&self, flow_id: &str) -> StoreResult<Vec<Value>> {
        let query = VERSIONS.all_sql::<Postgres>(Some(flow_id));
        select_docs(&self.client().await?, &query).await
    }
}
