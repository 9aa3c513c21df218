//! `/applications/{applicationId}/integrations/{integrationId}`: get, patch and delete one
//! integration. A change reconnects it when its connection settings changed; a delete (or
//! `enabled: false`) disconnects it. The handlers are [`crate::app_resource`]'s.

use crate::app_resource::item_routes;
use crate::resources::integrations::IntegrationResource;
use crate::state::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    item_routes::<IntegrationResource>()
}
