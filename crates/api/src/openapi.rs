//! `GET /openapi.json`: an OpenAPI 3.1 description of every route flowd serves, built once from
//! [`operations()`], the one table of them.
//!
//! The request and response bodies are Losant's official schemas (the ones [`flowd_model::schema`]
//! validates with), embedded as `components/schemas` under their file names (`flowPost`,
//! `flow`, …) and converted only where OpenAPI 3.1's dialect (JSON Schema 2020-12) differs from
//! theirs (draft-07, one draft-04): `$schema` dropped, draft-04 ids and boolean exclusive bounds
//! rewritten, and `#/definitions/<name>` references pointed at the component of that name.
//! Parameters (defaults, enums, ranges) are those of Losant's docs, narrowed to what flowd
//! accepts where it accepts less; every error answer is Losant's `{type, message}` with the
//! status codes of `spec/README.md` decision 1.
//!
//! utoipa's builder types make the document's frame (paths, operations, parameters, responses,
//! security). Its typed `Schema` cannot carry the official schemas as they are (it has no
//! `patternProperties`, `not`, `if`…), so those are inserted as JSON into the serialized
//! document.
//!
//! `tests/openapi.rs` checks the table against the router: every operation here is served, and
//! nothing else is.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use flowd_model::schema::{raw, SchemaName};
use flowd_model::scope::Action;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApiBuilder, Paths, Ref, RefOr, Required,
    ResponseBuilder, ResponsesBuilder,
};

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/openapi.json", get(serve))
}

/// Public, like `/health`: it describes the server, not anyone's data.
async fn serve() -> impl IntoResponse {
    static BYTES: OnceLock<axum::body::Bytes> = OnceLock::new();
    let bytes = BYTES.get_or_init(|| {
        // Serializing a `Value` cannot fail (its keys are strings).
        serde_json::to_vec(document()).unwrap_or_default().into()
    });
    ([(header::CONTENT_TYPE, "application/json")], bytes.clone())
}

/// The OpenAPI document, built on first use.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// An HTTP method of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Trace,
}

impl Method {
    /// Every method OpenAPI can describe; the public webhook URLs answer them all.
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Head,
        Method::Options,
        Method::Trace,
    ];

    /// Upper case, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
        }
    }

    fn http(self) -> HttpMethod {
        match self {
            Method::Get => HttpMethod::Get,
            Method::Post => HttpMethod::Post,
            Method::Put => HttpMethod::Put,
            Method::Patch => HttpMethod::Patch,
            Method::Delete => HttpMethod::Delete,
            Method::Head => HttpMethod::Head,
            Method::Options => HttpMethod::Options,
            Method::Trace => HttpMethod::Trace,
        }
    }
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// A bearer token whose scopes allow the action (decision 1: 401 without, 403 without scope).
    Token(Action),
    /// Anyone: it describes the server.
    Public,
    /// Anyone holding the webhook's secret token (in the path), plus its basic authentication
    /// when the webhook has one.
    Webhook,
}

/// A query parameter's values.
#[derive(Debug, Clone, Copy)]
pub enum Values {
    /// `true`/`false` (flowd also takes `1`/`0` and Python's `True`/`False`).
    Bool(bool),
    /// A whole number in `min..=max`.
    Int {
        default: Option<u64>,
        min: u64,
        max: u64,
    },
    /// One of a list.
    Enum {
        values: &'static [&'static str],
        default: Option<&'static str>,
    },
    /// A 24-hex id.
    Id,
    /// Free text.
    Text,
    /// JSON text that must match an official schema.
    Json(SchemaName),
}

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub description: &'static str,
    pub values: Values,
}

/// What a request body is.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    None,
    /// A JSON document checked against an official schema.
    Json(SchemaName),
    /// Anything: a webhook request's body, parsed by content type.
    Any,
}

/// What a successful answer is.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// JSON matching an official schema.
    Json(SchemaName),
    /// JSON matching one of flowd's own schemas (a component of that name).
    Own(&'static str),
    /// Server-Sent Events.
    EventStream,
    /// Whatever the webhook's settings or its workflow's Webhook Reply node say.
    Anything,
}

/// One route and method flowd serves.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: Method,
    /// OpenAPI path template (`{name}` for each path parameter).
    pub path: &'static str,
    /// Losant's action name (`flow.get`) where there is one; unique.
    pub id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub query: &'static [&'static [Param]],
    pub body: Body,
    pub status: u16,
    pub reply: Reply,
    pub errors: &'static [u16],
}

// ---- parameters, as Losant's docs describe them -----------------------------------------------

const ID_PATTERN: &str = r"^[A-Fa-f\d]{24}$";

/// Losant's global parameters, accepted by every action (decision 2).
const GLOBAL: &[Param] = &[
    Param {
        name: "_actions",
        description: "Return resource actions in response (accepted and ignored)",
        values: Values::Bool(false),
    },
    Param {
        name: "_links",
        description: "Return resource link in response; `false` leaves out `_links`",
        values: Values::Bool(true),
    },
    Param {
        name: "_embedded",
        description: "Return embedded resources in response (accepted and ignored)",
        values: Values::Bool(true),
    },
];

const SORT_DIRECTION: Values = Values::Enum {
    values: &["asc", "desc"],
    default: Some("asc"),
};

macro_rules! list_params {
    ($sort:expr, $filter:expr, $filter_example:literal) => {
        &[
            Param {
                name: "sortField",
                description: "Field to sort the results by",
                values: Values::Enum {
                    values: $sort,
                    default: Some($sort[0]),
                },
            },
            Param {
                name: "sortDirection",
                description: "Direction to sort the results by",
                values: SORT_DIRECTION,
            },
            Param {
                name: "page",
                description: "Which page of results to return",
                values: Values::Int {
                    default: Some(0),
                    min: 0,
                    max: u32::MAX as u64,
                },
            },
            Param {
                name: "perPage",
                description: "How many items to return per page",
                values: Values::Int {
                    default: Some(100),
                    min: 1,
                    max: crate::list::MAX_PER_PAGE,
                },
            },
            Param {
                name: "filterField",
                description: "Field to filter the results by. Blank or not provided means no \
                              filtering",
                values: Values::Enum {
                    values: $filter,
                    default: None,
                },
            },
            Param {
                name: "filter",
                description: concat!(
                    "Filter to apply against the filtered field. Supports globbing. Blank or not \
                     provided means no filtering. Example: ",
                    $filter_example
                ),
                values: Values::Text,
            },
        ]
    };
}

const APPLICATIONS_LIST: &[Param] = list_params!(
    &["name", "id", "creationDate", "ownerId", "lastUpdated"],
    &["name"],
    "my * app"
);
const TOKENS_LIST: &[Param] = list_params!(
    &[
        "name",
        "status",
        "id",
        "creationDate",
        "lastUpdated",
        "expirationDate"
    ],
    &["name", "status"],
    "my*token"
);
const FLOWS_LIST: &[Param] = list_params!(
    &["name", "id", "creationDate", "lastUpdated"],
    &["name"],
    "my*flow"
);
const VERSIONS_LIST: &[Param] = list_params!(
    &["version", "id", "creationDate", "lastUpdated"],
    &["version"],
    "v*"
);
const INTEGRATIONS_LIST: &[Param] = list_params!(
    &[
        "name",
        "id",
        "creationDate",
        "integrationType",
        "lastUpdated"
    ],
    &["name", "integrationType"],
    "my*integration"
);
const WEBHOOKS_LIST: &[Param] = list_params!(
    &["name", "id", "creationDate", "lastUpdated"],
    &["name"],
    "my*webhook"
);

const APPLICATIONS_EXTRA: &[Param] = &[
    Param {
        name: "orgId",
        description: "Losant: return the applications of this organization. flowd has no \
                      organizations; accepted and ignored",
        values: Values::Text,
    },
    SUMMARY_EXCLUDE,
    SUMMARY_INCLUDE,
];

const SUMMARY_EXCLUDE: Param = Param {
    name: "summaryExclude",
    description: "Comma-separated list of summary fields to exclude from application summary \
                  (accepted and ignored: flowd keeps no application summary)",
    values: Values::Text,
};
const SUMMARY_INCLUDE: Param = Param {
    name: "summaryInclude",
    description: "Comma-separated list of summary fields to include in application summary \
                  (accepted and ignored: flowd keeps no application summary)",
    values: Values::Text,
};
const SUMMARY: &[Param] = &[SUMMARY_EXCLUDE, SUMMARY_INCLUDE];

const INCLUDE_CUSTOM_NODES: &[Param] = &[Param {
    name: "includeCustomNodes",
    description: "If the result of the request should also include the details of any custom \
                  nodes referenced by the returned workflows (flowd has no custom nodes)",
    values: Values::Bool(false),
}];

const FLOWS_EXTRA: &[Param] = &[
    Param {
        name: "flowClass",
        description: "Filter the workflows by the given flow class",
        values: Values::Enum {
            values: &["edge", "embedded", "cloud", "customNode", "experience"],
            default: Some("cloud"),
        },
    },
    Param {
        name: "triggerFilter",
        description: "Array of triggers to filter by, as JSON (the flowTriggerFilter schema) or \
                      in bracket form (`triggerFilter[0][type]=webhook`)",
        values: Values::Json(SchemaName::FlowTriggerFilter),
    },
    Param {
        name: "query",
        description: "Workflow filter JSON object (the advancedFlowQuery schema) which overrides \
                      the filterField, filter, triggerFilter, and flowClass parameters",
        values: Values::Json(SchemaName::AdvancedFlowQuery),
    },
    Param {
        name: "allVersions",
        description: "If the request should also return flows with matching versions. Only \
                      applicable for requests with an advanced query",
        values: Values::Bool(false),
    },
];

const VERSIONS_QUERY: &[Param] = &[Param {
    name: "query",
    description: "Workflow version filter JSON object (the advancedFlowVersionQuery schema) \
                  which overrides the filterField and filter parameters",
    values: Values::Json(SchemaName::AdvancedFlowVersionQuery),
}];

const ALLOW_REPLACEMENT: &[Param] = &[Param {
    name: "allowReplacement",
    description: "Allow replacing an existing flow version with the same version name",
    values: Values::Bool(false),
}];

const INCLUDE_WORKFLOWS: &[Param] = &[Param {
    name: "includeWorkflows",
    description: "If the workflows that utilize this resource should also be deleted; flowd \
                  refuses `true` with 400",
    values: Values::Bool(false),
}];

const DURATION: Param = Param {
    name: "duration",
    description: "Duration of time range in milliseconds",
    values: Values::Int {
        default: Some(86_400_000),
        min: 1,
        max: 10 * 365 * 86_400_000,
    },
};
const END: Param = Param {
    name: "end",
    description: "End of time range in milliseconds since epoch (0: now)",
    values: Values::Int {
        default: Some(0),
        min: 0,
        max: crate::runs::MAX_END_MS,
    },
};
const DEVICE_ID: Param = Param {
    name: "deviceId",
    description: "For edge or embedded workflows, the device ID to return results for",
    values: Values::Id,
};
const FLOW_VERSION: Param = Param {
    name: "flowVersion",
    description: "Flow version name or ID. When not included, all versions. Pass develop for \
                  just the develop version",
    values: Values::Text,
};

const VERSION_ERRORS: &[Param] = &[
    DURATION,
    END,
    Param {
        name: "limit",
        description: "Maximum number of errors to return",
        values: Values::Int {
            default: Some(25),
            min: 0,
            max: crate::runs::MAX_LIMIT,
        },
    },
    Param {
        name: "sortDirection",
        description: "Direction to sort the results by",
        values: Values::Enum {
            values: &["asc", "desc"],
            default: Some("desc"),
        },
    },
    DEVICE_ID,
];
const FLOW_ERRORS: &[Param] = &[FLOW_VERSION];

const LOGS: &[Param] = &[
    Param {
        name: "limit",
        description: "Max log entries to return (ordered by time descending)",
        values: Values::Int {
            default: Some(1),
            min: 0,
            max: crate::runs::MAX_LIMIT,
        },
    },
    Param {
        name: "since",
        description: "Look for log entries since this time (ms since epoch)",
        values: Values::Int {
            default: None,
            min: 0,
            max: i64::MAX as u64 / 2,
        },
    },
];

const VERSION_STATS: &[Param] = &[
    DURATION,
    END,
    Param {
        name: "resolution",
        description: "Resolution in milliseconds (at least a minute; at most 50,000 buckets in \
                      the range)",
        values: Values::Int {
            default: Some(3_600_000),
            min: crate::runs::MIN_RESOLUTION_MS as u64,
            max: 366 * 86_400_000,
        },
    },
    DEVICE_ID,
];
const FLOW_STATS: &[Param] = &[FLOW_VERSION];

// ---- the operations ---------------------------------------------------------------------------

/// Error statuses: reading one thing, changing it (a body may be too large), a collection with
/// no parent (no 404), and pressing a button (the run queue may be full).
const READ: &[u16] = &[400, 401, 403, 404];
const WRITE: &[u16] = &[400, 401, 403, 404, 413];
const TOP_READ: &[u16] = &[400, 401, 403];
const TOP_WRITE: &[u16] = &[400, 401, 403, 413];
const PRESS: &[u16] = &[400, 401, 403, 404, 413, 429, 503];
const WEBHOOK_ERRORS: &[u16] = &[400, 401, 403, 404, 413, 429, 503, 504];

const APP: &str = "/applications/{applicationId}";
const FLOW: &str = "/applications/{applicationId}/flows/{flowId}";
const VERSION: &str = "/applications/{applicationId}/flows/{flowId}/versions/{flowVersionId}";

macro_rules! op {
    ($method:ident $path:expr, $id:expr, $tag:literal, $summary:expr, $access:expr,
     [$($query:expr),*], $body:expr, $status:literal $reply:expr, $errors:expr) => {
        Operation {
            method: Method::$method,
            path: $path,
            id: $id,
            tag: $tag,
            summary: $summary,
            access: $access,
            query: &[$($query),*],
            body: $body,
            status: $status,
            reply: $reply,
            errors: $errors,
        }
    };
}

macro_rules! webhook_ops {
    ($path:literal, $prefix:literal, $($method:ident $name:literal),*) => {
        [$(op!($method $path, concat!($prefix, ".", $name), "webhookRequests",
            "Send a request to a webhook: starts a run of every workflow listening to it",
            Access::Webhook, [], Body::Any, 200 Reply::Anything, WEBHOOK_ERRORS)),*]
    };
}

use Access::Token;
use Body::Json as In;
use Reply::Json as Out;
use SchemaName as S;

/// Every route and method flowd serves (HEAD is also answered wherever GET is, as HTTP says).
pub fn operations() -> &'static [Operation] {
    static ALL: OnceLock<Vec<Operation>> = OnceLock::new();
    ALL.get_or_init(|| [LOSANT, &WEBHOOK_ROOT[..], &WEBHOOK_PATH[..]].concat())
}

const LOSANT: &[Operation] = &[
    op!(Get "/applications", "applications.get", "applications",
        "Returns the applications the current user has permission to see",
        Token(Action::ApplicationsGet), [GLOBAL, APPLICATIONS_LIST, APPLICATIONS_EXTRA],
        Body::None, 200 Out(S::Applications), TOP_READ),
    op!(Post "/applications", "applications.post", "applications",
        "Create a new application", Token(Action::ApplicationsPost), [GLOBAL],
        In(S::ApplicationPost), 201 Out(S::Application), TOP_WRITE),
    op!(Get APP, "application.get", "application", "Retrieves information on an application",
        Token(Action::ApplicationGet), [GLOBAL, SUMMARY], Body::None,
        200 Out(S::Application), READ),
    op!(Patch APP, "application.patch", "application",
        "Updates information about an application", Token(Action::ApplicationPatch),
        [GLOBAL, SUMMARY], In(S::ApplicationPatch), 200 Out(S::Application), WRITE),
    op!(Delete APP, "application.delete", "application",
        "Deletes an application, with its workflows, storage, tokens and resources",
        Token(Action::ApplicationDelete), [GLOBAL], Body::None, 200 Out(S::Success), READ),
    op!(Get "/applications/{applicationId}/tokens", "applicationApiTokens.get",
        "applicationApiTokens", "Returns the API tokens for an application",
        Token(Action::ApplicationApiTokensGet), [GLOBAL, TOKENS_LIST], Body::None,
        200 Out(S::ApiTokens), READ),
    op!(Post "/applications/{applicationId}/tokens", "applicationApiTokens.post",
        "applicationApiTokens",
        "Create a new API token for an application; the answer is the only time its value \
         is shown",
        Token(Action::ApplicationApiTokensPost), [GLOBAL], In(S::ApplicationApiTokenPost),
        201 Out(S::ApiToken), WRITE),
    op!(Get "/applications/{applicationId}/tokens/{apiTokenId}", "applicationApiToken.get",
        "applicationApiToken", "Retrieves information on an API token",
        Token(Action::ApplicationApiTokenGet), [GLOBAL], Body::None, 200 Out(S::ApiToken),
        READ),
    op!(Patch "/applications/{applicationId}/tokens/{apiTokenId}",
        "applicationApiToken.patch", "applicationApiToken",
        "Updates information about an API token", Token(Action::ApplicationApiTokenPatch),
        [GLOBAL], In(S::ApiTokenPatch), 200 Out(S::ApiToken), WRITE),
    op!(Delete "/applications/{applicationId}/tokens/{apiTokenId}",
        "applicationApiToken.delete", "applicationApiToken", "Deletes an API token",
        Token(Action::ApplicationApiTokenDelete), [GLOBAL], Body::None,
        200 Out(S::Success), READ),
    op!(Get "/applications/{applicationId}/flows", "flows.get", "flows",
        "Returns the flows for an application", Token(Action::FlowsGet),
        [GLOBAL, FLOWS_LIST, FLOWS_EXTRA, INCLUDE_CUSTOM_NODES], Body::None,
        200 Out(S::Flows), READ),
    op!(Post "/applications/{applicationId}/flows", "flows.post", "flows",
        "Create a new flow for an application", Token(Action::FlowsPost),
        [GLOBAL, INCLUDE_CUSTOM_NODES], In(S::FlowPost), 201 Out(S::Flow), WRITE),
    op!(Post "/applications/{applicationId}/flows/import", "flows.import", "flows",
        "Import a set of flows and flow versions", Token(Action::FlowsImport), [GLOBAL],
        In(S::FlowsImportPost), 201 Out(S::FlowsImportResult), WRITE),
    op!(Get FLOW, "flow.get", "flow", "Retrieves information on a flow",
        Token(Action::FlowGet), [GLOBAL, INCLUDE_CUSTOM_NODES], Body::None,
        200 Out(S::Flow), READ),
    op!(Patch FLOW, "flow.patch", "flow", "Updates information about a flow",
        Token(Action::FlowPatch), [GLOBAL, INCLUDE_CUSTOM_NODES], In(S::FlowPatch),
        200 Out(S::Flow), WRITE),
    op!(Delete FLOW, "flow.delete", "flow", "Deletes a flow", Token(Action::FlowDelete),
        [GLOBAL], Body::None, 200 Out(S::Success), READ),
    op!(Get "/applications/{applicationId}/flows/{flowId}/storage",
        "flow.getStorageEntries", "flow", "Gets the current values in persistent storage",
        Token(Action::FlowGetStorageEntries), [GLOBAL], Body::None,
        200 Out(S::FlowStorageEntries), READ),
    op!(Patch "/applications/{applicationId}/flows/{flowId}/storage",
        "flow.setStorageEntry", "flow",
        "Sets a storage value (a key without `value` deletes the entry)",
        Token(Action::FlowSetStorageEntry), [GLOBAL], In(S::FlowStorageEntry),
        200 Out(S::Success), WRITE),
    op!(Delete "/applications/{applicationId}/flows/{flowId}/storage",
        "flow.clearStorageEntries", "flow", "Clear all storage entries",
        Token(Action::FlowClearStorageEntries), [GLOBAL], Body::None,
        200 Out(S::FlowStorageEntries), READ),
    op!(Get "/applications/{applicationId}/flows/{flowId}/storage-metadata",
        "flow.getStorageEntriesMetadata", "flow",
        "Gets the storage metadata for a workflow",
        Token(Action::FlowGetStorageEntriesMetadata), [GLOBAL], Body::None,
        200 Out(S::FlowStorageMetadata), READ),
    op!(Post "/applications/{applicationId}/flows/{flowId}/virtualButton",
        "flow.pressVirtualButton", "flow",
        "Presses the specified virtual button on the flow; answers once the run is queued",
        Token(Action::FlowPressVirtualButton), [GLOBAL], In(S::VirtualButtonPress),
        200 Out(S::Success), PRESS),
    op!(Get "/applications/{applicationId}/flows/{flowId}/errors", "flow.errors", "flow",
        "Get information about errors that occurred during runs of this workflow",
        Token(Action::FlowErrors), [GLOBAL, VERSION_ERRORS, FLOW_ERRORS], Body::None,
        200 Out(S::FlowErrors), READ),
    op!(Get "/applications/{applicationId}/flows/{flowId}/logs", "flow.getLogEntries",
        "flow", "Retrieve the recent log entries about runs of this workflow",
        Token(Action::FlowLog), [GLOBAL, LOGS], Body::None, 200 Out(S::FlowLog), READ),
    op!(Get "/applications/{applicationId}/flows/{flowId}/stats", "flow.stats", "flow",
        "Get statistics about workflow runs for this workflow", Token(Action::FlowStats),
        [GLOBAL, VERSION_STATS, FLOW_STATS], Body::None, 200 Out(S::FlowStats), READ),
    op!(Get "/applications/{applicationId}/flows/{flowId}/versions", "flowVersions.get",
        "flowVersions", "Returns the flow versions for a flow",
        Token(Action::FlowVersionsGet),
        [GLOBAL, VERSIONS_LIST, VERSIONS_QUERY, INCLUDE_CUSTOM_NODES], Body::None,
        200 Out(S::FlowVersions), READ),
    op!(Post "/applications/{applicationId}/flows/{flowId}/versions", "flowVersions.post",
        "flowVersions", "Create or replace a flow version for a flow",
        Token(Action::FlowVersionsPost), [GLOBAL, INCLUDE_CUSTOM_NODES, ALLOW_REPLACEMENT],
        In(S::FlowVersionPost), 201 Out(S::FlowVersion), WRITE),
    op!(Post "/applications/{applicationId}/flows/{flowId}/versions/delete",
        "flowVersions.delete", "flowVersions",
        "Delete flow versions (the default version is never deleted: it counts as failed)",
        Token(Action::FlowVersionsDelete), [GLOBAL], In(S::FlowVersionsDeletePost),
        200 Out(S::BulkDeleteResponse), WRITE),
    op!(Get VERSION, "flowVersion.get", "flowVersion",
        "Retrieves information on a flow version", Token(Action::FlowVersionGet),
        [GLOBAL, INCLUDE_CUSTOM_NODES], Body::None, 200 Out(S::FlowVersion), READ),
    op!(Patch VERSION, "flowVersion.patch", "flowVersion",
        "Updates information about a flow version", Token(Action::FlowVersionPatch),
        [GLOBAL, INCLUDE_CUSTOM_NODES], In(S::FlowVersionPatch), 200 Out(S::FlowVersion),
        WRITE),
    op!(Delete VERSION, "flowVersion.delete", "flowVersion", "Deletes a flow version",
        Token(Action::FlowVersionDelete), [GLOBAL], Body::None, 200 Out(S::Success), READ),
    op!(Get "/applications/{applicationId}/flows/{flowId}/versions/{flowVersionId}/errors",
        "flowVersion.errors", "flowVersion",
        "Get information about errors that occurred during runs of this workflow version",
        Token(Action::FlowVersionErrors), [GLOBAL, VERSION_ERRORS], Body::None,
        200 Out(S::FlowErrors), READ),
    op!(Get "/applications/{applicationId}/flows/{flowId}/versions/{flowVersionId}/logs",
        "flowVersion.getLogEntries", "flowVersion",
        "Retrieve the recent log entries about runs of this workflow version",
        Token(Action::FlowVersionLog), [GLOBAL, LOGS], Body::None, 200 Out(S::FlowLog),
        READ),
    op!(Get "/applications/{applicationId}/flows/{flowId}/versions/{flowVersionId}/stats",
        "flowVersion.stats", "flowVersion",
        "Get statistics about runs of this workflow version",
        Token(Action::FlowVersionStats), [GLOBAL, VERSION_STATS], Body::None,
        200 Out(S::FlowStats), READ),
    op!(Get "/applications/{applicationId}/integrations", "integrations.get",
        "integrations", "Returns the integrations for an application",
        Token(Action::IntegrationsGet), [GLOBAL, INTEGRATIONS_LIST], Body::None,
        200 Out(S::Integrations), READ),
    op!(Post "/applications/{applicationId}/integrations", "integrations.post",
        "integrations",
        "Create a new integration for an application (flowd connects MQTT integrations; \
         other types are refused with 400)",
        Token(Action::IntegrationsPost), [GLOBAL], In(S::IntegrationPost),
        201 Out(S::Integration), WRITE),
    op!(Get "/applications/{applicationId}/integrations/{integrationId}",
        "integration.get", "integration", "Retrieves information on an integration",
        Token(Action::IntegrationGet), [GLOBAL], Body::None, 200 Out(S::Integration),
        READ),
    op!(Patch "/applications/{applicationId}/integrations/{integrationId}",
        "integration.patch", "integration", "Updates information about an integration",
        Token(Action::IntegrationPatch), [GLOBAL], In(S::IntegrationPatch),
        200 Out(S::Integration), WRITE),
    op!(Delete "/applications/{applicationId}/integrations/{integrationId}",
        "integration.delete", "integration", "Deletes an integration",
        Token(Action::IntegrationDelete), [GLOBAL, INCLUDE_WORKFLOWS],
        Body::None, 200 Out(S::Success), READ),
    op!(Get "/applications/{applicationId}/webhooks", "webhooks.get", "webhooks",
        "Returns the webhooks for an application", Token(Action::WebhooksGet),
        [GLOBAL, WEBHOOKS_LIST], Body::None, 200 Out(S::Webhooks), READ),
    op!(Post "/applications/{applicationId}/webhooks", "webhooks.post", "webhooks",
        "Create a new webhook for an application; the server sets its secret `token`",
        Token(Action::WebhooksPost), [GLOBAL], In(S::WebhookPost), 201 Out(S::Webhook),
        WRITE),
    op!(Get "/applications/{applicationId}/webhooks/{webhookId}", "webhook.get",
        "webhook", "Retrieves information on a webhook", Token(Action::WebhookGet),
        [GLOBAL], Body::None, 200 Out(S::Webhook), READ),
    op!(Patch "/applications/{applicationId}/webhooks/{webhookId}", "webhook.patch",
        "webhook", "Updates information about a webhook (its token never changes)",
        Token(Action::WebhookPatch), [GLOBAL], In(S::WebhookPatch), 200 Out(S::Webhook),
        WRITE),
    op!(Delete "/applications/{applicationId}/webhooks/{webhookId}", "webhook.delete",
        "webhook", "Deletes a webhook", Token(Action::WebhookDelete),
        [GLOBAL, INCLUDE_WORKFLOWS], Body::None, 200 Out(S::Success), READ),
    op!(Get "/applications/{applicationId}/flows/{flowId}/debug", "flow.debug", "flow",
        "flowd's own: the flow's debug output as Server-Sent Events (`event: debug`, data \
         a JSON object), first the recent messages, then each new one as runs produce it; \
         `event: lagged` says how many a slow reader missed. The stream does not end",
        Token(Action::FlowDebug), [], Body::None, 200 Reply::EventStream, READ),
    op!(Get "/health", "health", "server", "Liveness: the process is up and serving",
        Access::Public, [], Body::None, 200 Reply::Own("health"), &[]),
    op!(Get "/ready", "ready", "server",
        "Readiness: the store answers a read and the run queue is connected",
        Access::Public, [], Body::None, 200 Reply::Own("readiness"), &[503]),
    op!(Get "/nodes", "nodes", "server",
        "flowd's own: the node and trigger types flowd runs, with their config fields, and \
         the node types it keeps in saved flows but cannot run yet",
        Access::Public, [], Body::None, 200 Reply::Own("nodeCatalog"), &[]),
    op!(Get "/openapi.json", "openapi", "server", "This document", Access::Public, [],
        Body::None, 200 Reply::Own("openApiDocument"), &[]),
];

/// `ANY /webhooks/{token}`: axum's `any` answers every method.
const WEBHOOK_ROOT: [Operation; 8] = webhook_ops!("/webhooks/{token}", "webhookRequest",
    Get "get", Post "post", Put "put", Patch "patch", Delete "delete", Head "head",
    Options "options", Trace "trace");
/// `ANY /webhooks/{token}/{*path}`; OpenAPI has no wildcard, so `{path}` stands for the rest.
const WEBHOOK_PATH: [Operation; 8] = webhook_ops!("/webhooks/{token}/{path}",
    "webhookPathRequest", Get "get", Post "post", Put "put", Patch "patch", Delete "delete",
    Head "head", Options "options", Trace "trace");

// ---- building the document --------------------------------------------------------------------

const TAGS: &[(&str, &str)] = &[
    ("applications", "Applications: list and create"),
    ("application", "One application"),
    (
        "applicationApiTokens",
        "An application's API tokens: list and create",
    ),
    ("applicationApiToken", "One application API token"),
    ("flows", "An application's workflows: list, create, import"),
    (
        "flow",
        "One workflow: its document, storage, virtual buttons, run history, debug stream",
    ),
    (
        "flowVersions",
        "A workflow's versions: list, create, delete by query",
    ),
    ("flowVersion", "One workflow version and its run history"),
    (
        "integrations",
        "An application's integrations: list and create",
    ),
    ("integration", "One integration"),
    ("webhooks", "An application's webhooks: list and create"),
    ("webhook", "One webhook"),
    (
        "webhookRequests",
        "The public webhook URLs (Losant serves them on triggers.losant.com): any method, any \
         body, no API token",
    ),
    (
        "server",
        "flowd itself: liveness, the node catalogue, this document",
    ),
];

/// Error answers, by status: the component name and when it happens (decision 1).
const ERRORS: &[(u16, &str, &str)] = &[
    (
        400,
        "Validation",
        "The body or a query parameter fails validation (`Validation`); the message names the \
         field",
    ),
    (
        401,
        "Unauthorized",
        "No, malformed, unknown, inactive or expired token (`Unauthorized`); for a webhook, \
         wrong or missing basic credentials (with `WWW-Authenticate`)",
    ),
    (
        403,
        "Forbidden",
        "The token's scopes do not allow the action, or it belongs to another application \
         (`Forbidden`); for a webhook, the webhook is disabled",
    ),
    (
        404,
        "NotFound",
        "The resource does not exist, or an id in the path is malformed (`NotFound`)",
    ),
    (
        413,
        "PayloadTooLarge",
        "The body is over the size limit (`PayloadTooLarge`): 1 MB by default for the API, 256 \
         KB for webhooks",
    ),
    (
        429,
        "RateLimit",
        "The run queue is full, or over the trigger rate limit (`RateLimit`)",
    ),
    (
        503,
        "ServiceUnavailable",
        "A service flowd depends on cannot be reached (`ServiceUnavailable`): the shared run \
         queue for a press or a webhook request; the store or the queue for `/ready`",
    ),
    (
        504,
        "GatewayTimeout",
        "The webhook waits for a reply and none came in time, or no workflow listens \
         (`GatewayTimeout`)",
    ),
];

/// The component name of an official schema: its file name without `.json`.
pub fn component_name(name: SchemaName) -> &'static str {
    name.file().trim_end_matches(".json")
}

fn schema_ref(name: &str) -> RefOr<utoipa::openapi::schema::Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn path_parameter(name: &str) -> Parameter {
    let (description, schema) = match name {
        "applicationId" => ("ID associated with the application", id_schema()),
        "flowId" => ("ID associated with the flow", id_schema()),
        "apiTokenId" => ("ID associated with the API token", id_schema()),
        "integrationId" => ("ID associated with the integration", id_schema()),
        "webhookId" => ("ID associated with the webhook", id_schema()),
        "flowVersionId" => (
            "Version ID or version name associated with the flow version",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .build(),
        ),
        "token" => (
            "The webhook's secret token (set by the server when the webhook was created)",
            ObjectBuilder::new().schema_type(Type::String).build(),
        ),
        _ => (
            "The rest of the path; the run's `data.path` (`/` followed by it)",
            ObjectBuilder::new().schema_type(Type::String).build(),
        ),
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn id_schema() -> utoipa::openapi::schema::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(ID_PATTERN))
        .build()
}

fn query_parameter(param: &Param) -> Parameter {
    let schema = match param.values {
        Values::Bool(default) => ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .default(Some(json!(default))),
        Values::Int { default, min, max } => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min))
            .maximum(Some(max))
            .default(default.map(|d| json!(d))),
        Values::Enum { values, default } => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values.iter().copied()))
            .default(default.map(|d| json!(d))),
        Values::Id => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(ID_PATTERN)),
        Values::Text => ObjectBuilder::new().schema_type(Type::String),
        Values::Json(_) => ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/json"),
    };
    let description = match param.values {
        Values::Json(name) => format!(
            "{} (JSON text matching #/components/schemas/{})",
            param.description,
            component_name(name)
        ),
        _ => param.description.to_owned(),
    };
    ParameterBuilder::new()
        .name(param.name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema.build()))
        .build()
}

/// The names of a path template's parameters, in order.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn json_content(schema: RefOr<utoipa::openapi::schema::Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn describe_access(access: Access) -> String {
    match access {
        Access::Token(action) => {
            let rule = action.rule();
            let mut scopes = vec![rule.scope, rule.wildcard];
            scopes.extend(rule.broad);
            format!(
                "Scopes allowing it: {}.",
                scopes
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Access::Public => "No authentication.".to_owned(),
        Access::Webhook => "No API token: the webhook's secret token in the path is the \
                            credential, with its basic authentication when the webhook has one. \
                            A request becomes the `data` of a run of every workflow listening \
                            (`{path, method, headers, query, body}`); the header \
                            `X-Flow-Version` runs that version instead of the live one. The \
                            answer is `{\"success\":true}` with the webhook's `responseCode` \
                            once the runs are queued, or, when the webhook waits for a reply, \
                            the first Webhook Reply node's status, headers and body."
            .to_owned(),
    }
}

fn operation(op: &Operation) -> utoipa::openapi::path::Operation {
    let mut builder = OperationBuilder::new()
        .operation_id(Some(op.id))
        .tag(op.tag)
        .summary(Some(op.summary))
        .description(Some(describe_access(op.access)));
    let mut parameters: Vec<Parameter> = path_parameters(op.path)
        .into_iter()
        .map(path_parameter)
        .collect();
    for set in op.query {
        parameters.extend(set.iter().map(query_parameter));
    }
    if let Access::Token(_) = op.access {
        parameters.push(
            ParameterBuilder::new()
                .name("losantdomain")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Domain scope of request (rarely needed; accepted and ignored)",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String).build()))
                .build(),
        );
    }
    if matches!(op.access, Access::Webhook) {
        parameters.push(
            ParameterBuilder::new()
                .name("X-Flow-Version")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Run this version (name) of each listening workflow instead of the live one",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String).build()))
                .build(),
        );
    }
    builder = builder.parameters(Some(parameters));
    match op.body {
        Body::None => {}
        Body::Json(name) => {
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        json_content(schema_ref(component_name(name))),
                    )
                    .build(),
            ));
        }
        Body::Any => {
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::False))
                    .description(Some(
                        "Any body, at most 256 KB: JSON, urlencoded forms and multipart become \
                         objects, other text a string, other bytes are cast as the webhook's \
                         `castBuffersAs` says",
                    ))
                    .content("*/*", ContentBuilder::new().build())
                    .build(),
            ));
        }
    }
    let success = match op.reply {
        Reply::Json(name) => ResponseBuilder::new()
            .description(success_description(op))
            .content(
                "application/json",
                json_content(schema_ref(component_name(name))),
            ),
        Reply::Own(name) => ResponseBuilder::new()
            .description(success_description(op))
            .content("application/json", json_content(schema_ref(name))),
        // Each event of the stream, as Schemathesis (and OpenAPI 3.2's `itemSchema`) reads
        // them: an object of the event's fields.
        Reply::EventStream => ResponseBuilder::new()
            .description("The debug stream")
            .content("text/event-stream", json_content(schema_ref("debugEvent"))),
        Reply::Anything => ResponseBuilder::new()
            .description(
                "`{\"success\":true}` with the webhook's `responseCode`, or the Webhook Reply \
                 node's answer",
            )
            .content("*/*", ContentBuilder::new().build()),
    };
    let mut responses = ResponsesBuilder::new();
    responses = match op.reply {
        // The webhook's `responseCode` and a reply's status are the user's choice.
        Reply::Anything => responses.response("default", success.build()),
        _ => responses.response(op.status.to_string(), success.build()),
    };
    for status in op.errors {
        if let Some((_, name, _)) = ERRORS.iter().find(|(s, _, _)| s == status) {
            responses = responses.response(status.to_string(), Ref::from_response_name(*name));
        }
    }
    builder = builder.responses(responses.build());
    builder = match op.access {
        Access::Token(_) => {
            builder.security(SecurityRequirement::new("bearerAuth", Vec::<String>::new()))
        }
        Access::Public => builder.securities(Some(Vec::<SecurityRequirement>::new())),
        // Basic authentication only when the webhook has it: either requirement is enough.
        Access::Webhook => builder.securities(Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("webhookBasicAuth", Vec::<String>::new()),
        ])),
    };
    builder.build()
}

fn success_description(op: &Operation) -> String {
    match op.status {
        201 => "Created".to_owned(),
        _ => "Success".to_owned(),
    }
}

fn build() -> Value {
    let mut paths = Paths::new();
    for op in operations() {
        paths.add_path_operation(op.path, vec![op.method.http()], operation(op));
    }
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "bearerAuth",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .security_scheme(
            "webhookBasicAuth",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    for (status, name, description) in ERRORS {
        let mut response = ResponseBuilder::new()
            .description(format!("{status}: {description}"))
            .content("application/json", json_content(schema_ref("error")));
        if *status == 401 {
            response = response.header(
                "WWW-Authenticate",
                utoipa::openapi::HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String).build())
                    .description(Some("Sent by webhooks with basic authentication"))
                    .build(),
            );
        }
        components = components.response(*name, response.build());
    }
    let api = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("flowd")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "flowd serves Losant's workflow REST API (applications, API tokens, flows, \
                     flow versions, integrations, webhooks) and the public webhook URLs. \
                     Bodies are checked against Losant's official JSON schemas, which are this \
                     document's components. Errors are `{\"type\", \"message\"}`.",
                ))
                .license(Some(utoipa::openapi::License::new("MIT")))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .tags(Some(TAGS.iter().map(|(name, description)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*description))
                .build()
        })))
        .build();
    // utoipa's types serialize to a JSON object; no map has non-string keys.
    let mut document = serde_json::to_value(&api).unwrap_or_else(|_| json!({}));
    let schemas = component_schemas();
    if let Some(components) = document
        .get_mut("components")
        .and_then(Value::as_object_mut)
    {
        components.insert("schemas".into(), Value::Object(schemas));
    }
    document
}

// ---- the official schemas as components --------------------------------------------------------

/// Every official schema under its name, converted to JSON Schema 2020-12, plus flowd's own.
fn component_schemas() -> Map<String, Value> {
    let mut out = Map::new();
    let mut hoisted = Vec::new();
    for name in SchemaName::ALL {
        let mut schema = raw(*name).clone();
        let draft4 = schema
            .get("$schema")
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("draft-04"));
        // `raw` copies in the definitions a schema points at (so each validates alone); here
        // they are components of their own, named as the references name them.
        if let Some(Value::Object(definitions)) = schema
            .as_object_mut()
            .and_then(|root| root.remove("definitions"))
        {
            hoisted.extend(definitions.into_iter().map(|(k, v)| (k, v, draft4)));
        }
        convert(&mut schema, draft4);
        out.insert(component_name(*name).to_owned(), schema);
    }
    for (name, mut schema, draft4) in hoisted {
        if out.contains_key(&name) {
            continue;
        }
        if let Some(root) = schema.as_object_mut() {
            root.remove("definitions");
        }
        convert(&mut schema, draft4);
        out.insert(name, schema);
    }
    for (name, schema) in own_schemas() {
        out.insert(name.to_owned(), schema);
    }
    out
}

/// Rewrites one schema (and every schema inside it) into JSON Schema 2020-12.
fn convert(schema: &mut Value, draft4: bool) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    object.remove("$schema");
    if draft4 {
        // Draft 4 named a schema's identifier `id`; nothing refers to it here.
        if object.get("id").is_some_and(Value::is_string) {
            object.remove("id");
        }
        // Draft 4's boolean exclusive bounds qualify `minimum`/`maximum`.
        for (flag, bound) in [
            ("exclusiveMinimum", "minimum"),
            ("exclusiveMaximum", "maximum"),
        ] {
            if let Some(Value::Bool(exclusive)) = object.get(flag).cloned() {
                object.remove(flag);
                if exclusive {
                    if let Some(limit) = object.remove(bound) {
                        object.insert(flag.to_owned(), limit);
                    }
                }
            }
        }
    }
    if let Some(Value::String(reference)) = object.get_mut("$ref") {
        if let Some(name) = reference.strip_prefix("#/definitions/") {
            *reference = format!("#/components/schemas/{name}");
        }
    }
    // A list of `items` is 2020-12's `prefixItems`; `additionalItems` became `items`.
    if object.get("items").is_some_and(Value::is_array) {
        if let Some(tuple) = object.remove("items") {
            object.insert("prefixItems".into(), tuple);
        }
        if let Some(rest) = object.remove("additionalItems") {
            object.insert("items".into(), rest);
        }
    }
    for (keyword, child) in object.iter_mut() {
        match keyword.as_str() {
            "properties" | "patternProperties" | "definitions" | "$defs" => {
                if let Some(map) = child.as_object_mut() {
                    map.values_mut().for_each(|s| convert(s, draft4));
                }
            }
            "items"
            | "additionalProperties"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames"
            | "additionalItems" => convert(child, draft4),
            "oneOf" | "anyOf" | "allOf" | "prefixItems" => {
                if let Some(list) = child.as_array_mut() {
                    list.iter_mut().for_each(|s| convert(s, draft4));
                }
            }
            _ => {}
        }
    }
}

/// flowd's own answers, which Losant has no schema for.
fn own_schemas() -> [(&'static str, Value); 5] {
    let fields = json!({
        "type": "object",
        "required": ["type", "configFields"],
        "properties": {
            "type": {"type": "string"},
            "configFields": {"type": "array", "items": {"type": "string"}}
        },
        "additionalProperties": false
    });
    [
        (
            "health",
            json!({
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"const": "ok"}},
                "additionalProperties": false
            }),
        ),
        (
            "readiness",
            json!({
                "type": "object",
                "required": ["status", "queue"],
                "properties": {
                    "status": {"const": "ok"},
                    "queue": {"enum": ["local", "nats"]}
                },
                "additionalProperties": false
            }),
        ),
        (
            "nodeCatalog",
            json!({
                "type": "object",
                "required": ["nodes", "triggers", "unsupportedNodes"],
                "properties": {
                    "nodes": {"type": "array", "items": fields},
                    "triggers": {"type": "array", "items": fields},
                    "unsupportedNodes": {"type": "array", "items": {"type": "string"}}
                },
                "additionalProperties": false
            }),
        ),
        (
            "debugEvent",
            json!({
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"enum": ["debug", "lagged"]},
                    "data": {"type": "string", "contentMediaType": "application/json"}
                }
            }),
        ),
        (
            "openApiDocument",
            json!({
                "type": "object",
                "required": ["openapi", "info", "paths"],
                "properties": {"openapi": {"type": "string", "pattern": "^3\\.1\\."}}
            }),
        ),
    ]
}
