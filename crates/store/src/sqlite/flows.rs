//! Flows in SQLite: the shared `flows` document table, and imports of flows with their
//! versions in one transaction.

use super::docs::DocTableOps;
use super::SqliteStore;
use crate::shared::documents::{FLOWS, VERSIONS};
use crate::{FlowStore, ListQuery, Page, StoreResult};
use async_trait::async_trait;
use serde_json::Value;

#[async_trait]
impl FlowStore for SqliteStore {
    async fn insert_flow(&self, doc: &Value) -> StoreResult<()> {
        let doc = doc.clone();
        self.write(move |tx| FLOWS.insert(tx, &doc)).await
    }

    async fn get_flow(&self, application_id: &str, id: &str) -> StoreResult<Option<Value>> {
        let (application_id, id) = (application_id.to_owned(), id.to_owned());
        self.read(move |conn| FLOWS.get(conn, Some(&application_id), &id))
            .await
    }

    async fn update_flow(&self, doc: &Value) -> StoreResult<bool> {
        let doc = doc.clone();
        self.write(move |tx| FLOWS.update(tx, &doc)).await
    }

    async fn delete_flow(&self, application_id: &str, id: &str) -> StoreResult<bool> {
        // Versions and storage entries go with it through ON DELETE CASCADE.
        let (application_id, id) = (application_id.to_owned(), id.to_owned());
        self.write(move |tx| FLOWS.delete(tx, Some(&application_id), &id))
            .await
    }

    async fn list_flows(&self, application_id: &str, query: &ListQuery) -> StoreResult<Page> {
        let (application_id, query) = (application_id.to_owned(), query.clone());
        self.read(move |conn| {
            let class: Vec<(&str, String)> = query
                .flow_class
                .iter()
                .map(|class| ("flow_class", class.clone()))
                .collect();
            FLOWS.list(conn, Some(&application_id), &query, &class)
        })
        .await
    }

    async fn import_flows(&self, flows: &[Value], versions: &[Value]) -> StoreResult<()> {
        let (flows, versions) = (flows.to_vec(), versions.to_vec());
        self.write(move |tx| {
            for flow in &flows {
                FLOWS.insert(tx, flow)?;
            }
            for version in &versions {
                VERSIONS.insert(tx, version)?;
            }
            Ok(())
        })
        .await
    }
}
