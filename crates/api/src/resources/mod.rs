//! One module per Losant resource, named and shaped like the official client's docs.

pub mod application;
pub mod application_api_token;
pub mod application_api_tokens;
pub mod applications;
pub mod flow;
pub mod flow_debug;
pub mod flow_version;
pub mod flow_versions;
pub mod flows;
pub mod integration;
pub mod integrations;
pub mod webhook;
pub mod webhooks;
