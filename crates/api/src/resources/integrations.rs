//! `/applications/{applicationId}/integrations`: list and create integrations (connections to
//! outside brokers). flowd connects MQTT integrations; other types, MQTT 5 and stored
//! credentials are refused when saved ([`flowd_engine::integrations::Integrations::check`]).
//! Responses carry the live connection's `status`.

use crate::app_resource::{collection_routes, Actions, AppResource};
use crate::list::ListSpec;
use crate::state::AppState;
use axum::Router;
use flowd_engine::cluster::Change;
use flowd_engine::engine::Engine;
use flowd_engine::integrations::Integrations;
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_store::{Column, ResourceKind};
use serde_json::{json, Map, Value};

pub fn router() -> Router<AppState> {
    collection_routes::<IntegrationResource>()
}

pub struct IntegrationResource;

impl AppResource for IntegrationResource {
    const KIND: ResourceKind = ResourceKind::Integration;
    const COLLECTION: &'static str = "integrations";
    const TYPE: &'static str = "integration";
    const ID_FIELD: &'static str = "integrationId";
    const LABEL: &'static str = "Integration";
    const ACTIONS: Actions = Actions {
        list: Action::IntegrationsGet,
        post: Action::IntegrationsPost,
        get: Action::IntegrationGet,
        patch: Action::IntegrationPatch,
        delete: Action::IntegrationDelete,
    };
    const POST_SCHEMA: SchemaName = SchemaName::IntegrationPost;
    const PATCH_SCHEMA: SchemaName = SchemaName::IntegrationPatch;
    const LIST: ListSpec = ListSpec {
        sort_fields: &[
            ("name", Column::Name),
            ("id", Column::Id),
            ("creationDate", Column::CreationDate),
            ("integrationType", Column::Kind),
            ("lastUpdated", Column::LastUpdated),
        ],
        default_sort: "name",
        filter_fields: &[("name", Column::Name), ("integrationType", Column::Kind)],
    };

    fn fill_new(doc: &mut Map<String, Value>) {
        doc.entry("enabled").or_insert(json!(true));
        doc.entry("topics").or_insert(json!([]));
    }

    fn check(doc: &Value) -> Result<(), String> {
        Integrations::check(doc)
    }

    fn applied(doc: &Value) -> Change {
        Change::Integration { doc: doc.clone() }
    }

    fn removed(id: &str) -> Change {
        Change::IntegrationDeleted { id: id.to_owned() }
    }

    fn live_fields(engine: &Engine, doc: &mut Value) {
        let id = crate::documents::text(doc, "id");
        doc["status"] = engine.integrations().status(&id);
    }
}
