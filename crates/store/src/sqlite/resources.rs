use super::docs::{parse_doc, DocTable};
use super::SqliteStore;
use crate::{Column, ListQuery, Page, ResourceKind, ResourceStore, StoreResult};
use async_trait::async_trait;
use serde_json::Value;

const INTEGRATIONS: DocTable = DocTable {
    table: "integrations",
    parent: Some(("application_id", "applicationId")),
    fields: &[
        ("name", "name"),
        ("integration_type", "integrationType"),
        ("creation_date", "creationDate"),
        ("last_updated", "lastUpdated"),
    ],
    columns: &[
        (Column::Id, "id"),
        (Column::Name, "name"),
        (Column::Kind, "integration_type"),
        (Column::CreationDate, "creation_date"),
        (Column::LastUpdated, "last_updated"),
    ],
};

const WEBHOOKS: DocTable = DocTable {
    table: "webhooks",
    parent: Some(("application_id", "applicationId")),
    fields: &[
        ("name", "name"),
        ("token", "token"),
        ("creation_date", "creationDate"),
        ("last_updated", "lastUpdated"),
    ],
    columns: &[
        (Column::Id, "id"),
        (Column::Name, "name"),
        (Column::CreationDate, "creation_date"),
        (Column::LastUpdated, "last_updated"),
    ],
};

fn table(kind: ResourceKind) -> &'static DocTable {
    match kind {
        ResourceKind::Integration => &INTEGRATIONS,
        ResourceKind::Webhook => &WEBHOOKS,
    }
}

#[async_trait]
impl ResourceStore for SqliteStore {
    async fn insert_resource(&self, kind: ResourceKind, doc: &Value) -> StoreResult<()> {
        let doc = doc.clone();
        self.write(move |tx| table(kind).insert(tx, &doc)).await
    }

    async fn get_resource(
        &self,
        kind: ResourceKind,
        application_id: &str,
        id: &str,
    ) -> StoreResult<Option<Value>> {
        let (application_id, id) = (application_id.to_owned(), id.to_owned());
        self.read(move |conn| table(kind).get(conn, Some(&application_id), &id))
            .await
    }

    async fn update_resource(&self, kind: ResourceKind, doc: &Value) -> StoreResult<bool> {
        let doc = doc.clone();
        self.write(move |tx| table(kind).update(tx, &doc)).await
    }

    async fn delete_resource(
        &self,
        kind: ResourceKind,
        application_id: &str,
        id: &str,
    ) -> StoreResult<bool> {
        let (application_id, id) = (application_id.to_owned(), id.to_owned());
        self.write(move |tx| table(kind).delete(tx, Some(&application_id), &id))
            .await
    }

    async fn list_resources(
        &self,
        kind: ResourceKind,
        application_id: &str,
        query: &ListQuery,
    ) -> StoreResult<Page> {
        let (application_id, query) = (application_id.to_owned(), query.clone());
        self.read(move |conn| table(kind).list(conn, Some(&application_id), &query, &[]))
            .await
    }

    async fn all_resources(&self, kind: ResourceKind) -> StoreResult<Vec<Value>> {
        self.read(move |conn| {
            let mut statement = conn.prepare(&format!("SELECT doc FROM {}", table(kind).table))?;
            let docs = statement
                .query_map([], |r| r.get::<_, String>(0))?
                .map(|text| parse_doc(&text?))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(docs)
        })
        .await
    }
}
