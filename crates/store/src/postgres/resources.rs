//! Integrations and webhooks in PostgreSQL: the shared resource document tables.

use super::docs::{select_docs, DocTableOps, Postgres};
use super::PostgresStore;
use crate::shared::documents::resource_table;
use crate::{ListQuery, Page, ResourceKind, ResourceStore, StoreResult};
use async_trait::async_trait;
use serde_json::Value;

#[async_trait]
impl ResourceStore for PostgresStore {
    async fn insert_resource(&self, kind: ResourceKind, doc: &Value) -> StoreResult<()> {
        resource_table(kind)
            .insert(&self.client().await?, doc)
            .await
    }

    async fn get_resource(
        &self,
        kind: ResourceKind,
        application_id: &str,
        id: &str,
    ) -> StoreResult<Option<Value>> {
        resource_table(kind)
            .get(&self.client().await?, Some(application_id), id)
            .await
    }

    async fn update_resource(&self, kind: ResourceKind, doc: &Value) -> StoreResult<bool> {
        resource_table(kind)
            .update(&self.client().await?, doc)
            .await
    }

    async fn delete_resource(
        &self,
        kind: ResourceKind,
        application_id: &str,
        id: &str,
    ) -> StoreResult<bool> {
        resource_table(kind)
            .delete(&self.client().await?, Some(application_id), id)
            .await
    }

    async fn list_resources(
        &self,
        kind: ResourceKind,
        application_id: &str,
        query: &ListQuery,
    ) -> StoreResult<Page> {
        resource_table(kind)
            .list(&self.client().await?, Some(application_id), query, &[])
            .await
    }

    async fn all_resources(&self, kind: ResourceKind) -> StoreResult<Vec<Value>> {
        let query = resource_table(kind).all_sql::<Postgres>(None);
        select_docs(&self.client().await?, &query).await
    }
}
