//! `virtualButton`: pressed through the API (`POST …/flows/{flowId}/virtualButton`) or by a
//! Workflow Trigger node. Found by its `key` or its `meta.uiId`; `data` is the press's payload,
//! or the trigger's `meta.payload` (JSON text) when the press gives none
//! ([`crate::engine::default_button_payload`]).

use serde::Deserialize;

/// A virtual button has no config of its own (`config: {}`); its default payload lives in
/// `meta.payload`.
#[derive(Deserialize)]
pub(crate) struct Config {}
