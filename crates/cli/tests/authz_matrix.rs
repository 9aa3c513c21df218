//! The authorization matrix: every action flowd serves × every kind of credential, one row per
//! (action, credential), each with the exact status and error body it must get.
//!
//! `errors.rs` checks each action's own scope, wildcard and `all.Application(.read)`, and the 401
//! cases on a few representative routes. This file is the full cross product: it adds the
//! user-level broad scopes (`all.User*`, `all.Organization*`, `only.Organization`, the `.bounded`
//! and `.cli` variants, which only `flowd token create` can mint), the neighbouring resource's
//! wildcard (`flows.*` must not open `flow.get`), and the 401 cases (expired, inactive, none,
//! malformed) on every action rather than a sample.
//!
//! The expectation is not read from flowd's own scope table (`flowd_model::scope`): each action
//! carries the list of scopes that Losant's documentation (`losant-api/docs/*.md`, "The token must
//! include at least one of the following scopes") gives for it, copied verbatim, so a mistake in
//! flowd's table shows up here as a failing row. All rows run, and the failures are reported
//! together, each with its row.

mod common;

use common::*;
use flowd_model::schema::{validate, SchemaName};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// What an allowed call of an action destroys, so each allowed row needs a fresh one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consumes {
    Nothing,
    Application,
    Token,
    Flow,
    Version,
    Integration,
    Webhook,
}

/// One action flowd serves.
struct Action {
    /// The action's own scope, as Losant's docs name it.
    scope: &'static str,
    method: Method,
    /// `{app}`, `{flow}`, `{version}`, `{token}`, `{integration}`, `{webhook}` are filled in.
    path: &'static str,
    body: Option<Value>,
    /// The status of an allowed call.
    status: u16,
    schema: SchemaName,
    /// The scopes that allow it, verbatim from the official docs.
    docs: &'static str,
    consumes: Consumes,
    /// Answers with an endless Server-Sent Events stream (only status and content type are read).
    streams: bool,
}

impl Action {
    /// The scopes named by `docs` ("a, b, or c.").
    fn allowed(&self) -> BTreeSet<&'static str> {
        self.docs
            .trim_end_matches('.')
            .split(", ")
            .map(|s| s.trim_start_matches("or ").trim())
            .collect()
    }

    fn resource(&self) -> &'static str {
        self.scope.split('.').next().unwrap()
    }

    /// A read-only action is one the `.read` broad scopes allow.
    fn read_only(&self) -> bool {
        let allowed = self.allowed();
        allowed.contains("all.User.read") || allowed.contains("all.Application.read")
    }
}

// The broad-scope lists of Losant's docs, shared by many actions (copied from
// `losant-api/docs/flow.md` and siblings; the per-action scope and wildcard are appended below).
const READ: &str = "all.Application, all.Application.bounded, all.Application.read, all.Organization, all.Organization.bounded, all.Organization.read, all.User, all.User.bounded, all.User.read";
const WRITE: &str = "all.Application, all.Application.bounded, all.Organization, all.Organization.bounded, all.User, all.User.bounded";
const TOKEN_ADMIN: &str = "all.Application, all.Organization, all.User";

fn docs(broad: &str, own: &str) -> &'static str {
    Box::leak(format!("{broad}, {own}.").into_boxed_str())
}

#[allow(clippy::too_many_arguments)]
fn action(
    scope: &'static str,
    method: Method,
    path: &'static str,
    body: Option<Value>,
    status: u16,
    schema: SchemaName,
    docs: &'static str,
    consumes: Consumes,
) -> Action {
    Action {
        scope,
        method,
        path,
        body,
        status,
        schema,
        docs,
        consumes,
        streams: false,
    }
}

/// Every action of the routers in `crates/api/src/resources/*.rs`.
fn actions() -> Vec<Action> {
    use Consumes::*;
    use Method as M;
    use SchemaName as S;
    const APP: &str = "/applications/{app}";
    const TOKENS: &str = "/applications/{app}/tokens";
    const TOKEN: &str = "/applications/{app}/tokens/{token}";
    const FLOWS: &str = "/applications/{app}/flows";
    const FLOW: &str = "/applications/{app}/flows/{flow}";
    const STORAGE: &str = "/applications/{app}/flows/{flow}/storage";
    const VERSIONS: &str = "/applications/{app}/flows/{flow}/versions";
    const VERSION: &str = "/applications/{app}/flows/{flow}/versions/{version}";
    const INTEGRATIONS: &str = "/applications/{app}/integrations";
    const INTEGRATION: &str = "/applications/{app}/integrations/{integration}";
    const WEBHOOKS: &str = "/applications/{app}/webhooks";
    const WEBHOOK: &str = "/applications/{app}/webhooks/{webhook}";
    vec![
        // docs/applications.md
        action("applications.get", M::GET, "/applications", None, 200, S::Applications,
            "all.Organization, all.Organization.bounded, all.Organization.read, all.User, all.User.bounded, all.User.cli, all.User.read, applications.*, applications.get, only.Organization, only.Organization.bounded, or only.Organization.read.",
            Nothing),
        action("applications.post", M::POST, "/applications", Some(json!({"name": "made"})), 201, S::Application,
            "all.Organization, all.Organization.bounded, all.User, all.User.bounded, applications.*, applications.post, only.Organization, or only.Organization.bounded.",
            Nothing),
        // docs/application.md
        action("application.get", M::GET, APP, None, 200, S::Application,
            "all.Application, all.Application.bounded, all.Application.cli, all.Application.read, all.Organization, all.Organization.bounded, all.Organization.read, all.User, all.User.bounded, all.User.cli, all.User.read, application.*, or application.get.",
            Nothing),
        action("application.patch", M::PATCH, APP, Some(json!({"description": "d"})), 200, S::Application,
            "all.Application, all.Application.bounded, all.Application.cli, all.Organization, all.Organization.bounded, all.User, all.User.bounded, all.User.cli, application.*, or application.patch.",
            Nothing),
        action("application.delete", M::DELETE, APP, None, 200, S::Success,
            docs(WRITE, "application.*, or application.delete"), Application),
        // docs/applicationApiTokens.md, docs/applicationApiToken.md
        action("applicationApiTokens.get", M::GET, TOKENS, None, 200, S::ApiTokens,
            docs(READ, "applicationApiTokens.*, or applicationApiTokens.get"), Nothing),
        action("applicationApiTokens.post", M::POST, TOKENS, Some(json!({"name": "minted", "scope": ["flow.get"]})), 201, S::ApiToken,
            docs(TOKEN_ADMIN, "applicationApiTokens.*, or applicationApiTokens.post"), Nothing),
        action("applicationApiToken.get", M::GET, TOKEN, None, 200, S::ApiToken,
            docs(READ, "applicationApiToken.*, or applicationApiToken.get"), Nothing),
        action("applicationApiToken.patch", M::PATCH, TOKEN, Some(json!({"description": "d"})), 200, S::ApiToken,
            docs(TOKEN_ADMIN, "applicationApiToken.*, or applicationApiToken.patch"), Nothing),
        action("applicationApiToken.delete", M::DELETE, TOKEN, None, 200, S::Success,
            docs(TOKEN_ADMIN, "applicationApiToken.*, or applicationApiToken.delete"), Token),
        // docs/flows.md
        action("flows.get", M::GET, FLOWS, None, 200, S::Flows,
            docs(READ, "flows.*, or flows.get"), Nothing),
        action("flows.post", M::POST, FLOWS, Some(json!({"name": "made"})), 201, S::Flow,
            docs(WRITE, "flows.*, or flows.post"), Nothing),
        action("flows.import", M::POST, "/applications/{app}/flows/import", Some(json!({"flows": [{"name": "imported"}]})), 201, S::FlowsImportResult,
            docs(WRITE, "flows.*, or flows.import"), Nothing),
        // docs/flow.md: all eleven actions
        action("flow.get", M::GET, FLOW, None, 200, S::Flow,
            docs(READ, "flow.*, or flow.get"), Nothing),
        action("flow.patch", M::PATCH, FLOW, Some(json!({"description": "d"})), 200, S::Flow,
            docs(WRITE, "flow.*, or flow.patch"), Nothing),
        action("flow.delete", M::DELETE, FLOW, None, 200, S::Success,
            docs(WRITE, "flow.*, or flow.delete"), Flow),
        action("flow.getStorageEntries", M::GET, STORAGE, None, 200, S::FlowStorageEntries,
            docs(READ, "flow.*, or flow.getStorageEntries"), Nothing),
        action("flow.getStorageEntriesMetadata", M::GET, "/applications/{app}/flows/{flow}/storage-metadata", None, 200, S::FlowStorageMetadata,
            docs(READ, "flow.*, or flow.getStorageEntriesMetadata"), Nothing),
        action("flow.setStorageEntry", M::PATCH, STORAGE, Some(json!({"key": "k", "value": [1]})), 200, S::Success,
            docs(WRITE, "flow.*, or flow.setStorageEntry"), Nothing),
        action("flow.clearStorageEntries", M::DELETE, STORAGE, None, 200, S::FlowStorageEntries,
            docs(WRITE, "flow.*, or flow.clearStorageEntries"), Nothing),
        action("flow.pressVirtualButton", M::POST, "/applications/{app}/flows/{flow}/virtualButton", Some(json!({"key": "btn"})), 200, S::Success,
            docs(WRITE, "flow.*, or flow.pressVirtualButton"), Nothing),
        action("flow.errors", M::GET, "/applications/{app}/flows/{flow}/errors", None, 200, S::FlowErrors,
            docs(READ, "flow.*, or flow.errors"), Nothing),
        // `getLogEntries` in the docs; its scope is `flow.log`.
        action("flow.log", M::GET, "/applications/{app}/flows/{flow}/logs", None, 200, S::FlowLog,
            docs(READ, "flow.*, or flow.log"), Nothing),
        action("flow.stats", M::GET, "/applications/{app}/flows/{flow}/stats", None, 200, S::FlowStats,
            docs(READ, "flow.*, or flow.stats"), Nothing),
        // flowd's own debug stream (README): a read, scope `flow.debug` (in Losant's vocabulary).
        Action {
            streams: true,
            ..action("flow.debug", M::GET, "/applications/{app}/flows/{flow}/debug", None, 200, S::Success,
                docs(READ, "flow.*, or flow.debug"), Nothing)
        },
        // docs/flowVersions.md, docs/flowVersion.md
        action("flowVersions.get", M::GET, VERSIONS, None, 200, S::FlowVersions,
            docs(READ, "flowVersions.*, or flowVersions.get"), Nothing),
        action("flowVersions.post", M::POST, "/applications/{app}/flows/{flow}/versions?allowReplacement=true", Some(json!({"version": "made"})), 201, S::FlowVersion,
            docs(WRITE, "flowVersions.*, or flowVersions.post"), Nothing),
        action("flowVersions.delete", M::POST, "/applications/{app}/flows/{flow}/versions/delete", Some(json!({"query": {"version": "no-such-version"}})), 200, S::BulkDeleteResponse,
            docs(WRITE, "flowVersions.*, or flowVersions.delete"), Nothing),
        action("flowVersion.get", M::GET, VERSION, None, 200, S::FlowVersion,
            docs(READ, "flowVersion.*, or flowVersion.get"), Nothing),
        action("flowVersion.patch", M::PATCH, VERSION, Some(json!({"notes": "n"})), 200, S::FlowVersion,
            docs(WRITE, "flowVersion.*, or flowVersion.patch"), Nothing),
        action("flowVersion.delete", M::DELETE, VERSION, None, 200, S::Success,
            docs(WRITE, "flowVersion.*, or flowVersion.delete"), Version),
        action("flowVersion.errors", M::GET, "/applications/{app}/flows/{flow}/versions/{version}/errors", None, 200, S::FlowErrors,
            docs(READ, "flowVersion.*, or flowVersion.errors"), Nothing),
        action("flowVersion.log", M::GET, "/applications/{app}/flows/{flow}/versions/{version}/logs", None, 200, S::FlowLog,
            docs(READ, "flowVersion.*, or flowVersion.log"), Nothing),
        action("flowVersion.stats", M::GET, "/applications/{app}/flows/{flow}/versions/{version}/stats", None, 200, S::FlowStats,
            docs(READ, "flowVersion.*, or flowVersion.stats"), Nothing),
        // docs/integrations.md, docs/integration.md
        action("integrations.get", M::GET, INTEGRATIONS, None, 200, S::Integrations,
            docs(READ, "integrations.*, or integrations.get"), Nothing),
        action("integrations.post", M::POST, INTEGRATIONS, Some(integration_body("made")), 201, S::Integration,
            docs(WRITE, "integrations.*, or integrations.post"), Nothing),
        action("integration.get", M::GET, INTEGRATION, None, 200, S::Integration,
            docs(READ, "integration.*, or integration.get"), Nothing),
        action("integration.patch", M::PATCH, INTEGRATION, Some(json!({"name": "renamed"})), 200, S::Integration,
            docs(WRITE, "integration.*, or integration.patch"), Nothing),
        action("integration.delete", M::DELETE, INTEGRATION, None, 200, S::Success,
            docs(WRITE, "integration.*, or integration.delete"), Integration),
        // docs/webhooks.md, docs/webhook.md
        action("webhooks.get", M::GET, WEBHOOKS, None, 200, S::Webhooks,
            docs(READ, "webhooks.*, or webhooks.get"), Nothing),
        action("webhooks.post", M::POST, WEBHOOKS, Some(json!({"name": "made"})), 201, S::Webhook,
            docs(WRITE, "webhooks.*, or webhooks.post"), Nothing),
        action("webhook.get", M::GET, WEBHOOK, None, 200, S::Webhook,
            docs(READ, "webhook.*, or webhook.get"), Nothing),
        action("webhook.patch", M::PATCH, WEBHOOK, Some(json!({"name": "renamed"})), 200, S::Webhook,
            docs(WRITE, "webhook.*, or webhook.patch"), Nothing),
        action("webhook.delete", M::DELETE, WEBHOOK, None, 200, S::Success,
            docs(WRITE, "webhook.*, or webhook.delete"), Webhook),
    ]
}

/// A disabled MQTT integration: the matrix is about authorization, not connections.
fn integration_body(name: &str) -> Value {
    json!({"name": name, "integrationType": "mqtt", "enabled": false,
           "mqttConfig": {"host": "127.0.0.1", "port": 1883, "protocol": "mqtt"}})
}

/// Which scope a scoped credential holds.
#[derive(Debug, Clone, Copy)]
enum ScopeOf {
    /// The action's own scope (`flow.get`).
    Own,
    /// Its resource's wildcard (`flow.*`).
    Wildcard,
    /// The neighbouring resource's wildcard (`flows.*` for a `flow` action and back).
    Neighbour,
    /// Another action of the same resource (a write for a read and a read for a write).
    Sibling,
    Fixed(&'static str),
}

/// Who holds a scoped credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// An application token of the target's application when Losant's application-token
    /// vocabulary has the scope, else a user token (made with `flowd token create`).
    AppOrUser,
    /// A user token: `all.User*`, `all.Organization*`, `.bounded`, `.cli` cannot be held by an
    /// application token (they are not in `applicationApiTokenPost`'s enum).
    User,
    /// An application token of another application.
    OtherApp,
}

/// One column of the matrix.
#[derive(Debug, Clone, Copy)]
enum Credential {
    Scoped(Holder, ScopeOf),
    /// `all.Application` whose `expirationDate` has passed.
    Expired,
    /// `all.Application` patched to `status: inactive`.
    Inactive,
    NoToken,
    /// A bearer value no token could have.
    Malformed,
}

fn credentials() -> Vec<(&'static str, Credential)> {
    use Credential::*;
    use Holder::*;
    use ScopeOf::*;
    vec![
        ("own scope", Scoped(AppOrUser, Own)),
        ("resource wildcard", Scoped(AppOrUser, Wildcard)),
        ("neighbour wildcard", Scoped(AppOrUser, Neighbour)),
        ("sibling action scope", Scoped(AppOrUser, Sibling)),
        (
            "all.Application",
            Scoped(AppOrUser, Fixed("all.Application")),
        ),
        (
            "all.Application.read",
            Scoped(AppOrUser, Fixed("all.Application.read")),
        ),
        (
            "user all.Application.bounded",
            Scoped(User, Fixed("all.Application.bounded")),
        ),
        ("user all.User", Scoped(User, Fixed("all.User"))),
        ("user all.User.read", Scoped(User, Fixed("all.User.read"))),
        (
            "user all.User.bounded",
            Scoped(User, Fixed("all.User.bounded")),
        ),
        ("user all.User.cli", Scoped(User, Fixed("all.User.cli"))),
        (
            "user all.Organization",
            Scoped(User, Fixed("all.Organization")),
        ),
        (
            "user all.Organization.read",
            Scoped(User, Fixed("all.Organization.read")),
        ),
        (
            "user all.Organization.bounded",
            Scoped(User, Fixed("all.Organization.bounded")),
        ),
        (
            "user only.Organization",
            Scoped(User, Fixed("only.Organization")),
        ),
        (
            "another application's all.Application",
            Scoped(OtherApp, Fixed("all.Application")),
        ),
        ("expired token", Expired),
        ("inactive token", Inactive),
        ("no token", NoToken),
        ("malformed token", Malformed),
    ]
}

/// What a row must get.
#[derive(Debug, Clone)]
enum Expect {
    /// The action's success status, and a body matching its schema.
    Allowed,
    /// An error status, its `type`, and a word its message must contain.
    Error(u16, &'static str, String),
}

/// One row of the matrix.
struct Case {
    action: usize,
    column: &'static str,
    /// The scope held, for scoped credentials.
    scope: Option<&'static str>,
    credential: Credential,
    expect: Expect,
}

fn neighbour(resource: &str) -> String {
    // Plural resources drop their `s`; singular ones gain it (`applicationApiToken` ↔ `…Tokens`).
    match resource.strip_suffix('s') {
        Some(singular) => format!("{singular}.*"),
        None => format!("{resource}s.*"),
    }
}

/// The matrix: every action × every credential, with what each row must get.
fn matrix(actions: &[Action]) -> Vec<Case> {
    let mut cases = Vec::new();
    for (index, action) in actions.iter().enumerate() {
        let allowed = action.allowed();
        for (column, credential) in credentials() {
            let (holder, scope) = match credential {
                Credential::Scoped(holder, of) => {
                    let scope: &'static str = match of {
                        ScopeOf::Own => action.scope,
                        ScopeOf::Wildcard => {
                            Box::leak(format!("{}.*", action.resource()).into_boxed_str())
                        }
                        ScopeOf::Neighbour => {
                            Box::leak(neighbour(action.resource()).into_boxed_str())
                        }
                        ScopeOf::Sibling => {
                            actions
                                .iter()
                                .filter(|a| {
                                    a.resource() == action.resource() && a.scope != action.scope
                                })
                                .min_by_key(|a| a.read_only() == action.read_only())
                                .expect("every resource has two actions")
                                .scope
                        }
                        ScopeOf::Fixed(scope) => scope,
                    };
                    (holder, Some(scope))
                }
                _ => (Holder::AppOrUser, None),
            };
            let expect = match (credential, scope) {
                (Credential::Expired, _) => Expect::Error(401, "Unauthorized", "expired".into()),
                (Credential::Inactive, _) => Expect::Error(401, "Unauthorized", "inactive".into()),
                (Credential::NoToken, _) => Expect::Error(401, "Unauthorized", "missing".into()),
                (Credential::Malformed, _) => Expect::Error(401, "Unauthorized", "Invalid".into()),
                // Decision 1: a token of another application is refused even when its scope
                // would allow the action; a user-level action refuses it for its scope.
                (_, Some(scope)) if holder == Holder::OtherApp => {
                    if allowed.contains(scope) {
                        Expect::Error(403, "Forbidden", "another application".into())
                    } else {
                        Expect::Error(403, "Forbidden", action.scope.into())
                    }
                }
                (_, Some(scope)) if allowed.contains(scope) => Expect::Allowed,
                (_, _) => Expect::Error(403, "Forbidden", action.scope.into()),
            };
            cases.push(Case {
                action: index,
                column,
                scope,
                credential,
                expect,
            });
        }
    }
    cases
}

/// The resources a row's path points at.
#[derive(Clone)]
struct Target {
    app: String,
    flow: String,
    version: String,
    token: String,
    integration: String,
    webhook: String,
}

impl Target {
    fn path(&self, template: &str) -> String {
        template
            .replace("{app}", &self.app)
            .replace("{flow}", &self.flow)
            .replace("{version}", &self.version)
            .replace("{token}", &self.token)
            .replace("{integration}", &self.integration)
            .replace("{webhook}", &self.webhook)
    }
}

fn id_of(doc: &Value) -> String {
    doc["id"].as_str().expect("document has an id").to_owned()
}

struct World {
    server: Server,
    shared: Target,
    /// Another application, whose tokens must not reach the shared one.
    other_app: String,
    /// Application tokens by (application, scope) and user tokens by scope, minted on first use.
    app_tokens: HashMap<(String, String), String>,
    user_tokens: HashMap<String, String>,
    expired: String,
    inactive: String,
    versions_made: usize,
}

impl World {
    async fn target(server: &Server, app: &str) -> Target {
        let flow = id_of(&server.create_flow(app, &button_flow("target")).await);
        let version = server
            .ok(
                Method::POST,
                &format!("/applications/{app}/flows/{flow}/versions"),
                Some(&json!({"version": "v1"})),
                201,
                SchemaName::FlowVersion,
            )
            .await;
        let (_, token) = server.create_token(app, &["flow.get"]).await;
        let integration = server
            .ok(
                Method::POST,
                &format!("/applications/{app}/integrations"),
                Some(&integration_body("target")),
                201,
                SchemaName::Integration,
            )
            .await;
        let webhook = server
            .ok(
                Method::POST,
                &format!("/applications/{app}/webhooks"),
                Some(&json!({"name": "target"})),
                201,
                SchemaName::Webhook,
            )
            .await;
        Target {
            app: app.to_owned(),
            flow,
            version: id_of(&version),
            token: id_of(&token),
            integration: id_of(&integration),
            webhook: id_of(&webhook),
        }
    }

    /// A target whose `consumes` part is new, so that an allowed delete has its own victim.
    async fn fresh(&mut self, consumes: Consumes) -> Target {
        let server = &self.server;
        let app = self.shared.app.clone();
        let mut target = self.shared.clone();
        match consumes {
            Consumes::Nothing => {}
            Consumes::Application => {
                target.app = server.create_application("to delete").await;
            }
            Consumes::Token => {
                target.token = id_of(&server.create_token(&app, &["flow.get"]).await.1);
            }
            Consumes::Flow => {
                target.flow = id_of(&server.create_flow(&app, &button_flow("to delete")).await);
            }
            Consumes::Version => {
                self.versions_made += 1;
                let doc = server
                    .ok(
                        Method::POST,
                        &format!("/applications/{app}/flows/{}/versions", target.flow),
                        Some(&json!({"version": format!("doomed-{}", self.versions_made)})),
                        201,
                        SchemaName::FlowVersion,
                    )
                    .await;
                target.version = id_of(&doc);
            }
            Consumes::Integration => {
                let doc = server
                    .ok(
                        Method::POST,
                        &format!("/applications/{app}/integrations"),
                        Some(&integration_body("to delete")),
                        201,
                        SchemaName::Integration,
                    )
                    .await;
                target.integration = id_of(&doc);
            }
            Consumes::Webhook => {
                let doc = server
                    .ok(
                        Method::POST,
                        &format!("/applications/{app}/webhooks"),
                        Some(&json!({"name": "to delete"})),
                        201,
                        SchemaName::Webhook,
                    )
                    .await;
                target.webhook = id_of(&doc);
            }
        }
        target
    }

    async fn app_token(&mut self, app: &str, scope: &str) -> String {
        let key = (app.to_owned(), scope.to_owned());
        if let Some(token) = self.app_tokens.get(&key) {
            return token.clone();
        }
        let (token, _) = self.server.create_token(app, &[scope]).await;
        self.app_tokens.insert(key, token.clone());
        token
    }

    /// A user-level token, made the only way flowd makes them: `flowd token create`.
    fn user_token(&mut self, scope: &str) -> String {
        if let Some(token) = self.user_tokens.get(scope) {
            return token.clone();
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowd"))
            .args(["token", "create", "--name", "matrix", "--scope", scope])
            .arg("--data-dir")
            .arg(&self.server.data_dir)
            .env_remove("FLOWD_DATA_DIR")
            .output()
            .expect("flowd token create runs");
        assert!(
            out.status.success(),
            "flowd token create --scope {scope}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        self.user_tokens.insert(scope.to_owned(), token.clone());
        token
    }
}

/// What came back: status, content type, and the JSON body (not read for a successful stream).
struct Reply {
    status: StatusCode,
    content_type: String,
    body: Value,
}

async fn send(
    server: &Server,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
    streams: bool,
) -> Reply {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.base))
        .timeout(Duration::from_secs(30));
    if let Some(header) = authorization {
        request = request.header("authorization", header);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // A successful event stream never ends: dropping the response closes it.
    let body = if streams && status.is_success() {
        Value::Null
    } else {
        let text = response.text().await.unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        content_type,
        body,
    }
}

/// Checks a reply against a row's expectation; the problem, if any.
fn check(action: &Action, expect: &Expect, reply: &Reply) -> Result<(), String> {
    match expect {
        Expect::Allowed => {
            if reply.status.as_u16() != action.status {
                return Err(format!(
                    "expected {} (allowed), got {}: {}",
                    action.status, reply.status, reply.body
                ));
            }
            if action.streams {
                if !reply.content_type.starts_with("text/event-stream") {
                    return Err(format!("not an event stream: {}", reply.content_type));
                }
            } else if let Err(e) = validate(action.schema, &reply.body) {
                return Err(format!(
                    "body does not match {}: {e}: {}",
                    action.schema.file(),
                    reply.body
                ));
            }
            Ok(())
        }
        Expect::Error(status, kind, needle) => {
            if reply.status.as_u16() != *status {
                return Err(format!(
                    "expected {status} {kind}, got {}: {}",
                    reply.status, reply.body
                ));
            }
            if let Err(e) = validate(SchemaName::Error, &reply.body) {
                return Err(format!(
                    "error body is not Losant's {{type, message}}: {e}: {}",
                    reply.body
                ));
            }
            let keys: BTreeSet<&str> = reply
                .body
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            if keys != BTreeSet::from(["message", "type"]) {
                return Err(format!("error body has fields {keys:?}: {}", reply.body));
            }
            if reply.body["type"] != *kind {
                return Err(format!("expected type {kind}: {}", reply.body));
            }
            let message = reply.body["message"].as_str().unwrap_or_default();
            if !message.contains(needle.as_str()) {
                return Err(format!("message {message:?} does not mention {needle:?}"));
            }
            Ok(())
        }
    }
}

#[tokio::test]
async fn every_action_against_every_credential() {
    let began = Instant::now();
    let server = Server::start().await;

    // Made first, to expire while the rest is set up (a token cannot be made already expired).
    let app = server.create_application("matrix").await;
    let expires_at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let expiring = server
        .ok(
            Method::POST,
            &format!("/applications/{app}/tokens"),
            Some(&json!({"name": "expiring", "scope": ["all.Application"],
                         "expirationDate": flowd_model::time::format_iso(expires_at)})),
            201,
            SchemaName::ApiToken,
        )
        .await;
    let expired = expiring["token"].as_str().unwrap().to_owned();
    let (inactive, doc) = server.create_token(&app, &["all.Application"]).await;
    server
        .ok(
            Method::PATCH,
            &format!("/applications/{app}/tokens/{}", id_of(&doc)),
            Some(&json!({"status": "inactive"})),
            200,
            SchemaName::ApiToken,
        )
        .await;

    let shared = World::target(&server, &app).await;
    let other_app = server.create_application("someone else's").await;
    let mut world = World {
        server,
        shared,
        other_app,
        app_tokens: HashMap::new(),
        user_tokens: HashMap::new(),
        expired,
        inactive,
        versions_made: 0,
    };

    let actions = actions();
    // The table covers exactly the actions of flowd's scope table, so a new route must be added.
    let listed: BTreeSet<&str> = actions.iter().map(|a| a.scope).collect();
    let served: BTreeSet<&str> = flowd_model::scope::ACTIONS
        .iter()
        .map(|(_, rule)| rule.scope)
        .collect();
    assert_eq!(listed, served, "the matrix must list every action served");
    assert_eq!(listed.len(), actions.len(), "an action is listed twice");
    let cases = matrix(&actions);
    let vocabulary = flowd_model::scope::application_token_vocabulary();
    let app_holdable = |scope: &str| vocabulary.iter().any(|s| s == scope);

    // Every row's expectation must be checkable: the matrix must allow and refuse something in
    // each column that can (a table that expects only 403s would pass a server denying all).
    for (column, _) in credentials() {
        let rows: Vec<&Case> = cases.iter().filter(|c| c.column == column).collect();
        assert_eq!(rows.len(), actions.len());
    }
    let allowed_rows = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Allowed))
        .count();
    assert!(allowed_rows > actions.len() * 5, "{allowed_rows}");

    let wait = expires_at - chrono::Utc::now() + chrono::Duration::milliseconds(100);
    if let Ok(wait) = wait.to_std() {
        tokio::time::sleep(wait).await;
    }

    let mut failures: Vec<String> = Vec::new();
    let mut requests = 0usize;
    let mut user_held: BTreeSet<&str> = BTreeSet::new();
    for case in &cases {
        let action = &actions[case.action];
        // A refused call destroys nothing, so it may use the shared target.
        let target = match case.expect {
            Expect::Allowed => world.fresh(action.consumes).await,
            Expect::Error(..) => world.shared.clone(),
        };
        let (authorization, held_by) = match case.credential {
            Credential::Scoped(holder, _) => {
                let scope = case.scope.unwrap();
                let (token, who) = match holder {
                    Holder::OtherApp => {
                        let other_app = world.other_app.clone();
                        (
                            world.app_token(&other_app, scope).await,
                            "app token of another app",
                        )
                    }
                    Holder::AppOrUser if app_holdable(scope) => {
                        (world.app_token(&target.app, scope).await, "app token")
                    }
                    _ => {
                        user_held.insert(scope);
                        (world.user_token(scope), "user token")
                    }
                };
                (Some(format!("Bearer {token}")), format!("{scope} ({who})"))
            }
            Credential::Expired => (Some(format!("Bearer {}", world.expired)), "expired".into()),
            Credential::Inactive => (
                Some(format!("Bearer {}", world.inactive)),
                "inactive".into(),
            ),
            Credential::NoToken => (None, "no Authorization header".into()),
            Credential::Malformed => (
                Some("Bearer %%not.a/flowd*token%%".to_owned()),
                "malformed bearer".into(),
            ),
        };
        let path = target.path(action.path);
        let reply = send(
            &world.server,
            action.method.clone(),
            &path,
            authorization.as_deref(),
            action.body.as_ref(),
            action.streams,
        )
        .await;
        requests += 1;
        if let Err(problem) = check(action, &case.expect, &reply) {
            failures.push(format!(
                "[{} × {}] {} {path} with {held_by}: {problem}",
                action.scope, case.column, action.method
            ));
        }
        if reply.status.is_server_error() {
            failures.push(format!("[{} × {}] a 5xx", action.scope, case.column));
        }
    }

    // The owner token (all.User) and the server are still fine after the matrix.
    let (status, body) = world.server.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, 200, "{body}");
    eprintln!(
        "authorization matrix: {} actions × {} credentials = {} rows ({allowed_rows} allowed), \
         {requests} requests, user tokens for {user_held:?}, {:.1} s",
        actions.len(),
        credentials().len(),
        cases.len(),
        began.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
