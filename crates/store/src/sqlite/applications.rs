//! Applications in SQLite: the shared `applications` document table, run on the store's
//! connections.

use super::docs::DocTableOps;
use super::SqliteStore;
use crate::shared::documents::APPLICATIONS;
use crate::{ApplicationStore, ListQuery, Page, StoreResult};
use async_trait::async_trait;
use serde_json::Value;

#[async_trait]
impl ApplicationStore for SqliteStore {
    async fn insert_application(&self, doc: &Value) -> StoreResult<()> {
        let doc = doc.clone();
        self.write(move |tx| APPLICATIONS.insert(tx, &doc)).await
    }

    async fn get_application(&self, id: &str) -> StoreResult<Option<Value>> {
        let id = id.to_owned();
        self.read(move |conn| APPLICATIONS.get(conn, None, &id))
            .await
    }

    async fn update_application(&self, doc: &Value) -> StoreResult<bool> {
        let doc = doc.clone();
        self.write(move |tx| APPLICATIONS.update(tx, &doc)).await
    }

    async fn delete_application(&self, id: &str) -> StoreResult<bool> {
        // Flows, versions, storage and tokens go with it through ON DELETE CASCADE.
        let id = id.to_owned();
        self.write(move |tx| APPLICATIONS.delete(tx, None, &id))
            .await
    }

    async fn list_applications(&self, query: &ListQuery) -> StoreResult<Page> {
        let query = query.clone();
        self.read(move |conn| APPLICATIONS.list(conn, None, &query, &[]))
            .await
    }
}
