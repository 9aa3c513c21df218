use super::docs::{parse_doc, DocTable};
use super::SqliteStore;
use crate::{Column, FlowVersionStore, ListQuery, Page, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::OptionalExtension;
use serde_json::Value;

pub(crate) const VERSIONS: DocTable = DocTable {
    table: "flow_versions",
    parent: Some(("flow_id", "flowId")),
    fields: &[
        ("version", "version"),
        ("creation_date", "creationDate"),
        ("last_updated", "lastUpdated"),
    ],
    columns: &[
        (Column::Id, "id"),
        (Column::Version, "version"),
        (Column::Name, "version"),
        (Column::CreationDate, "creation_date"),
        (Column::LastUpdated, "last_updated"),
    ],
};

#[async_trait]
impl FlowVersionStore for SqliteStore {
    async fn insert_version(&self, doc: &Value, replace: bool) -> StoreResult<()> {
        let doc = doc.clone();
        self.write(move |tx| {
            let flow_id = doc
                .get("flowId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = doc
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let existing: Option<String> = tx
                .query_row(
                    "SELECT id FROM flow_versions WHERE flow_id = ?1 AND version = ?2",
                    [flow_id, name],
                    |r| r.get(0),
                )
                .optional()?;
            match existing {
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
            // An id wins over a version that happens to be named like an id.
            let text: Option<String> = conn
                .query_row(
                    "SELECT doc FROM flow_versions WHERE flow_id = ?1 AND (id = ?2 OR version = ?2) \
                     ORDER BY (id = ?2) DESC LIMIT 1",
                    [flow_id, id_or_name],
                    |r| r.get(0),
                )
                .optional()?;
            text.map(|t| parse_doc(&t)).transpose()
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
        self.read(move |conn| {
            let mut statement =
                conn.prepare("SELECT doc FROM flow_versions WHERE flow_id = ?1 ORDER BY id")?;
            let texts = statement
                .query_map([flow_id], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            texts.iter().map(|t| parse_doc(t)).collect()
        })
        .await
    }
}
