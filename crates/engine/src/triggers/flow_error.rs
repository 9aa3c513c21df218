//! `flowError` ("Workflow Error"): fires when a run of a flow of the same application ends with
//! a halting error.
//!
//! * `config.scope`: `local` (default; errors of this flow) or `cloud` (errors of every flow of
//!   the application). Losant's `experience` and `global` scopes have no counterpart here and
//!   are refused when saved.
//! * It fires in the catching flow's live version (default version, else develop), whatever
//!   version failed. Narrower scopes fire first: `local` catchers before `cloud` ones.
//! * `data`: `{errorInfo: {error: {name, message}, nodeId, nodeType}, erroredPayload}` —
//!   the failing path's payload, or the text [`OMITTED`] when its JSON is over 256 KB.
//!   `relayId` = the failing flow, `relayType: "flow"`, `triggerId` = `<failing flow id>-flowError`.
//! * Errors of a run started by a Workflow Error trigger never fire another (no cascades).

use crate::error::CompileError;
use crate::triggers::TriggerSpec;
use serde::Deserialize;

/// What `erroredPayload` holds instead of a payload over [`MAX_ERRORED_PAYLOAD`].
pub const OMITTED: &str = "Payload data omitted due to size";
/// Largest `erroredPayload` passed on, as compact JSON.
pub const MAX_ERRORED_PAYLOAD: usize = 256 * 1024;

#[derive(Deserialize)]
pub(crate) struct Config {
    scope: Option<String>,
}

/// Which failures a Workflow Error trigger catches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Its own flow's.
    Local,
    /// Any flow's of its application.
    Cloud,
}

pub fn compile(spec: &TriggerSpec<'_>) -> Result<Scope, CompileError> {
    let config: Config = spec.config()?;
    match config.scope.as_deref().map(str::trim).unwrap_or("") {
        "" | "local" => Ok(Scope::Local),
        "cloud" => Ok(Scope::Cloud),
        other => Err(spec.error(format!(
            "scope: \"{other}\" is not supported; use local (this flow) or cloud (every flow of the application)"
        ))),
    }
}
