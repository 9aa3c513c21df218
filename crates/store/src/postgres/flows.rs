//! Flows in PostgreSQL: the shared `flows` document table, and imports of flows with their
//! versions in one transaction.

use super::docs::DocTableOps;
use super::PostgresStore;
use crate::shared::documents::{FLOWS, VERSIONS};
use crate::{FlowStore, ListQuery, Page, StoreResult};
use async_trait::async_trait;
use serde_json::Value;

#[async_trait]
impl FlowStore for PostgresStore {
    async fn insert_flow(&self, doc: &Value) -> StoreResult<()> {
        FLOWS.insert(&self.client().await?, doc).await
    }

    async fn get_flow(&self, application_id: &str, id: &str) -> StoreResult<Option<Value>> {
        FLOWS
            .get(&self.client().await?, Some(application_id), id)
            .await
    }

    async fn update_flow(&self, doc: &Value) -> StoreResult<bool> {
        FLOWS.update(&self.client().await?, doc).await
    }

    async fn delete_flow(&self, application_id: &str, id: &str) -> StoreResult<bool> {
        // Versions, storage and accounting go with it through ON DELETE CASCADE.
        FLOWS
            .delete(&self.client().await?, Some(application_id), id)
            .await
    }

    async fn list_flows(&self, application_id: &str, query: &ListQuery) -> StoreResult<Page> {
        let class: Vec<(&str, String)> = query
            .flow_class
            .iter()
            .map(|class| ("flow_class", class.clone()))
            .collect();
        FLOWS
            .list(&self.client().await?, Some(application_id), query, &class)
            .await
    }

    async fn import_flows(&self, flows: &[Value], versions: &[Value]) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for flow in flows {
            FLOWS.insert(&tx, flow).await?;
        }
        for version in versions {
            VERSIONS.insert(&tx, version).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
