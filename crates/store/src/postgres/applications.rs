//! Applications in PostgreSQL: the shared `applications` document table, a statement a call.

use super::docs::DocTableOps;
use super::PostgresStore;
use crate::shared::documents::APPLICATIONS;
use crate::{ApplicationStore, ListQuery, Page, StoreResult};
use async_trait::async_trait;
use serde_json::Value;

#[async_trait]
impl ApplicationStore for PostgresStore {
    async fn insert_application(&self, doc: &Value) -> StoreResult<()> {
        APPLICATIONS.insert(&self.client().await?, doc).await
    }

    async fn get_application(&self, id: &str) -> StoreResult<Option<Value>> {
        APPLICATIONS.get(&self.client().await?, None, id).await
    }

    async fn update_application(&self, doc: &Value) -> StoreResult<bool> {
        APPLICATIONS.update(&self.client().await?, doc).await
    }

    async fn delete_application(&self, id: &str) -> StoreResult<bool> {
        // Flows, versions, storage, accounting and tokens go with it through ON DELETE CASCADE.
        APPLICATIONS.delete(&self.client().await?, None, id).await
    }

    async fn list_applications(&self, query: &ListQuery) -> StoreResult<Page> {
        APPLICATIONS
            .list(&self.client().await?, None, query, &[])
            .await
    }
}
