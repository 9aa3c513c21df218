//! Integrations and webhooks in SQLite: the shared resource document tables.

use super::docs::{select_docs, DocTableOps, Sqlite};
use super::SqliteStore;
use crate::shared::documents::resource_table;
use crate::{ListQuery, Page, ResourceKind, ResourceStore, StoreResult};
use async_trait::async_trait;
use serde_json::Value;

#[async_trait]
impl ResourceStore for SqliteStore {
    async fn insert_resource(&self, kind: ResourceKind, doc: &Value) -> StoreResult<()> {
        let doc = doc.clone();
        self.write(move |tx| resource_table(kind).insert(tx, &doc))
            .await
    }

    async fn get_resource(
        &self,
        kind: ResourceKind,
        application_id: &str,
        id: &str,
    ) -> StoreResult<Option<Value>> {
        let (application_id, id) = (application_id.to_owned(), id.to_owned());
        self.read(move |conn| resource_table(kind).get(conn, Some(&application_id), &id))
            .await
    }

    async fn update_resource(&self, kind: ResourceKind, doc: &Value) -> StoreResult<bool> {
        let doc = doc.clone();
        self.write(move |tx| resource_table(kind).update(tx, &doc))
            .await
    }

    async fn delete_resource(
        &self,
        kind: ResourceKind,
        application_id: &str,
        id: &str,
    ) -> StoreResult<bool> {
        let (application_id, id) = (application_id.to_owned(), id.to_owned());
        self.write(move |tx| resource_table(kind).delete(tx, Some(&application_id), &id))
            .await
    }

    async fn list_resources(
        &self,
        kind: ResourceKind,
        application_id: &str,
        query: &ListQuery,
    ) -> StoreResult<Page> {
        let (application_id, query) = (application_id.to_owned(), query.clone());
        self.read(move |conn| resource_table(kind).list(conn, Some(&application_id), &query, &[]))
            .await
    }

    async fn all_resources(&self, kind: ResourceKind) -> StoreResult<Vec<Value>> {
        self.read(move |conn| select_docs(conn, &resource_table(kind).all_sql::<Sqlite>(None)))
            .await
    }
}
