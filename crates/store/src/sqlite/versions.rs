//! Flow versions in SQLite: the shared `flow_versions` document table, names unique per flow.

use super::docs::{select, select_docs, DocTableOps, Sqlite};
use super::SqliteStore;
use crate::shared::documents::{version_by_id_or_name_sql, version_id_by_name_sql, VERSIONS};
use crate::shared::sql::ResultRow;
use crate::{FlowVersionStore, ListQuery, Page, StoreError, StoreResult};
use async_trait::async_trait;
use serde_json::Value;

#[async_trait]
impl FlowVersionStore for SqliteStore {
    async fn insert_version(&self, doc: &Value, replace: bool) -> StoreResult<()> {
        let doc = doc.clone();
        self.write(move |tx| {
            let field = |name: &str| doc.get(name).and_then(Value::as_str).unwrap_or_default();
            let (flow_id, name) = (field("flowId"), field("version"));
            let existing = select(
                tx,
                &version_id_by_name_sql::<Sqlite>(flow_id, name),
                |row| row.text(0),
            )?;
            match existing.first() {
                Some(_) if !replace => Err(StoreError::Conflict(format!(
                    "A version named \"{name}\" already exists for this workflow"
                ))),
                Some(_) => VERSIONS.update(tx, &doc).map(|_| ()),
                None => VERSIONS.insert(tx, &doc),
            }
        })
        .await
    }

    async fn get_version(&self, flow_id: &str, id_or_name: &str) -> StoreResult<Option<Value>> {
        let (flow_id, id_or_name) = (flow_id.to_owned(), id_or_name.to_owned());
        self.read(move |conn| {
            let query = version_by_id_or_name_sql::<Sqlite>(&flow_id, &id_or_name);
            Ok(select_docs(conn, &query)?.into_iter().next())
        })
        .await
    }

    async fn update_version(&self, doc: &Value) -> StoreResult<bool> {
        let doc = doc.clone();
        self.write(move |tx| VERSIONS.update(tx, &doc)).await
    }

    async fn delete_version(&self, flow_id: &str, id: &str) -> StoreResult<bool> {
        let (flow_id, id) = (flow_id.to_owned(), id.to_owned());
        self.write(move |tx| VERSIONS.delete(tx, Some(&flow_id), &id))
            .await
    }

    async fn list_versions(&self, flow_id: &str, query: &ListQuery) -> StoreResult<Page> {
        let (flow_id, query) = (flow_id.to_owned(), query.clone());
        self.read(move |conn| VERSIONS.list(conn, Some(&flow_id), &query, &[]))
            .await
    }

    async fn all_versions(&self, flow_id: &str) -> StoreResult<Vec<Value>> {
        let flow_id = flow_id.to_owned();
        self.read(move |conn| select_docs(conn, &VERSIONS.all_sql::<Sqlite>(Some(&flow_id))))
            .await
    }
}
