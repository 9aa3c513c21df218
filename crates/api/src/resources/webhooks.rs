//! `/applications/{applicationId}/webhooks`: list and create webhooks, the public URLs that
//! trigger an application's workflows.
//!
//! The server sets `token`, the secret that will name a webhook's public URL
//! (`/webhooks/{token}`, served by [`crate::webhook_requests`]): 32 random bytes, base64url without padding (43
//! characters), made once at creation and never changed. A new webhook gets Losant's defaults:
//! `responseCode` 200, `verificationType` `none`, `waitForReply` false, `isWebsocket` false,
//! `enabled` true. What flowd cannot honour yet (other verification types, WebSocket webhooks, a
//! 1xx response code, basic authentication with only one of username and password) is refused
//! with 400 naming the field ([`flowd_engine::triggers::webhook::Webhooks::check`]).

use crate::app_resource::{collection_routes, Actions, AppResource};
use crate::list::ListSpec;
use crate::state::AppState;
use axum::Router;
use flowd_engine::cluster::Change;
use flowd_engine::triggers::webhook::{Webhooks, DEFAULT_RESPONSE_CODE};
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_store::{Column, ResourceKind};
use serde_json::{json, Map, Value};

pub fn router() -> Router<AppState> {
    collection_routes::<WebhookResource>()
}

/// Random bytes in a webhook token: 256 bits, as unguessable as a URL needs to be.
const TOKEN_BYTES: usize = 32;

/// A new webhook token: URL-safe base64 without padding, so it can stand in a path as is.
fn new_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub struct WebhookResource;

impl AppResource for WebhookResource {
    const KIND: ResourceKind = ResourceKind::Webhook;
    const COLLECTION: &'static str = "webhooks";
    const TYPE: &'static str = "webhook";
    const ID_FIELD: &'static str = "webhookId";
    const LABEL: &'static str = "Webhook";
    const ACTIONS: Actions = Actions {
        list: Action::WebhooksGet,
        post: Action::WebhooksPost,
        get: Action::WebhookGet,
        patch: Action::WebhookPatch,
        delete: Action::WebhookDelete,
    };
    const POST_SCHEMA: SchemaName = SchemaName::WebhookPost;
    const PATCH_SCHEMA: SchemaName = SchemaName::WebhookPatch;
    const LIST: ListSpec = ListSpec {
        sort_fields: &[
            ("name", Column::Name),
            ("id", Column::Id),
            ("creationDate", Column::CreationDate),
            ("lastUpdated", Column::LastUpdated),
        ],
        default_sort: "name",
        filter_fields: &[("name", Column::Name)],
    };

    fn fill_new(doc: &mut Map<String, Value>) {
        doc.insert("token".into(), json!(new_token()));
        doc.entry("responseCode")
            .or_insert(json!(DEFAULT_RESPONSE_CODE));
        doc.entry("verificationType").or_insert(json!("none"));
        doc.entry("waitForReply").or_insert(json!(false));
        doc.entry("isWebsocket").or_insert(json!(false));
        doc.entry("enabled").or_insert(json!(true));
    }

    fn check(doc: &Value) -> Result<(), String> {
        Webhooks::check(doc)
    }

    fn applied(doc: &Value) -> Change {
        Change::Webhook { doc: doc.clone() }
    }

    fn removed(id: &str) -> Change {
        Change::WebhookDeleted { id: id.to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_and_unique() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, new_token());
    }
}
