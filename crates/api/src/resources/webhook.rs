//! `/applications/{applicationId}/webhooks/{webhookId}`: get, patch and delete one webhook.
//! A change keeps the webhook's token (its URL never changes); a delete frees it.
//! `DELETE …?includeWorkflows=true` is refused with 400 (see [`crate::app_resource`]). The handlers
//! are [`crate::app_resource`]'s.

use crate::app_resource::item_routes;
use crate::resources::webhooks::WebhookResource;
use crate::state::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    item_routes::<WebhookResource>()
}
