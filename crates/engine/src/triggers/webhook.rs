//! Webhooks: an application's public URLs that trigger its workflows, and the `webhook`
//! trigger (`key` = the webhook's id, `config: {}`) that listens to one.
//!
//! A webhook is a resource of its application (`/applications/{id}/webhooks`). Each has a
//! `token`, a random URL-safe secret set by the server when the webhook is created and never
//! changed, that names its public URL (`/webhooks/{token}`). [`Webhooks`] is the engine's
//! registry of them, by token, for the route that receives those requests: it
//! answers "which webhook, of which application, and how does it answer" without reading the
//! store. The API reports every create, change and delete ([`Webhooks::apply`],
//! [`Webhooks::remove`], [`Webhooks::remove_application`]); at start [`load`] fills it from the
//! store.
//!
//! What flowd cannot honour yet is refused when a webhook is saved ([`Webhooks::check`]) rather
//! than stored and then ignored: verification protocols other than `none` (the Facebook,
//! Fitbit, Twilio and Alexa challenges) and WebSocket webhooks.

use flowd_store::{ResourceKind, Store, StoreError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The verification types flowd honours.
pub const SUPPORTED_VERIFICATION: &[&str] = &["none"];

/// The status code of the automatic reply when a webhook does not set one (Losant's default).
pub const DEFAULT_RESPONSE_CODE: u16 = 200;

/// What the public route needs to know about one webhook.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub webhook_id: String,
    pub application_id: String,
    pub enabled: bool,
    /// The request waits for a Webhook Reply node; otherwise it is answered at once.
    pub wait_for_reply: bool,
    /// The status of the automatic reply (`{"success":true}`).
    pub response_code: u16,
    /// `(username, password)` the request must present with HTTP Basic authentication; set when
    /// the webhook has both a `basicAuthUsername` and a `basicAuthPassword`.
    pub basic_auth: Option<(String, String)>,
    /// How uploaded files (and other binary bodies) appear in `data.body`: `utf8` (default),
    /// `base64`, `hex`, `binary` (one character per byte) or `array` (of byte values).
    pub cast_buffers_as: String,
    /// Multipart files become `{filename, contentType, data}` rather than their data alone.
    pub annotate_multipart: bool,
}

// By hand, so that the password is never printed (logs, test failures).
impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("webhook_id", &self.webhook_id)
            .field("application_id", &self.application_id)
            .field("enabled", &self.enabled)
            .field("wait_for_reply", &self.wait_for_reply)
            .field("response_code", &self.response_code)
            .field(
                "basic_auth",
                &self
                    .basic_auth
                    .as_ref()
                    .map(|(user, _)| (user, "<redacted>")),
            )
            .finish()
    }
}

fn text<'a>(doc: &'a Value, field: &str) -> &'a str {
    doc.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn flag(doc: &Value, field: &str, default: bool) -> bool {
    doc.get(field).and_then(Value::as_bool).unwrap_or(default)
}

impl WebhookSettings {
    /// The settings of a webhook document, and its token; the message names the field at
    /// fault. The rules of [`Webhooks::check`] apply.
    fn from_doc(doc: &Value) -> Result<(String, WebhookSettings), String> {
        Webhooks::check(doc)?;
        let token = text(doc, "token");
        if token.is_empty() {
            return Err("token: the webhook has no token".into());
        }
        let response_code = match doc.get("responseCode") {
            None | Some(Value::Null) => DEFAULT_RESPONSE_CODE,
            Some(code) => code
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .ok_or_else(|| format!("responseCode: {code} is not a status code"))?,
        };
        let user = text(doc, "basicAuthUsername");
        let password = text(doc, "basicAuthPassword");
        let basic_auth =
            (!user.is_empty() && !password.is_empty()).then(|| (user.into(), password.into()));
        let settings = WebhookSettings {
            webhook_id: text(doc, "id").to_owned(),
            application_id: text(doc, "applicationId").to_owned(),
            enabled: flag(doc, "enabled", true),
            wait_for_reply: flag(doc, "waitForReply", false),
            response_code,
            basic_auth,
            cast_buffers_as: match text(doc, "castBuffersAs") {
                "" => "utf8".to_owned(),
                cast => cast.to_owned(),
            },
            annotate_multipart: flag(doc, "annotateMultipart", false),
        };
        Ok((token.to_owned(), settings))
    }
}

#[derive(Default)]
struct Registry {
    /// Shared with the requests that use them: a lookup copies a pointer, not the settings.
    by_token: HashMap<String, Arc<WebhookSettings>>,
    /// Webhook id → token, to find a webhook's entry when it changes or goes.
    tokens: HashMap<String, String>,
}

impl Registry {
    fn remove(&mut self, webhook_id: &str) {
        if let Some(token) = self.tokens.remove(webhook_id) {
            self.by_token.remove(&token);
        }
    }
}

/// The engine's registry of webhooks, by token. Reads (every request to a public URL) far
/// outnumber writes (API changes), hence a read-write lock; no lock is held across an await.
#[derive(Default)]
pub struct Webhooks {
    registry: RwLock<Registry>,
}

impl Webhooks {
    pub fn new() -> Webhooks {
        Webhooks::default()
    }

    /// Checks a webhook document before it is saved: what the schema allows but flowd cannot
    /// honour, and basic authentication set by halves. The message names the field at fault.
    pub fn check(doc: &Value) -> Result<(), String> {
        if let Some(kind) = doc.get("verificationType").and_then(Value::as_str) {
            if !SUPPORTED_VERIFICATION.contains(&kind) {
                return Err(format!(
                    "verificationType: \"{kind}\" verification is not supported by flowd yet; \
                     supported: {}",
                    SUPPORTED_VERIFICATION.join(", ")
                ));
            }
        }
        if flag(doc, "isWebsocket", false) {
            return Err(
                "isWebsocket: WebSocket webhooks are not supported by flowd yet; only HTTP".into(),
            );
        }
        if let Some(code) = doc.get("responseCode").and_then(Value::as_u64) {
            // A 1xx status is informational: it cannot be the one answer to a request.
            if code < 200 {
                return Err(format!(
                    "responseCode: {code} cannot answer a request; use a status from 200 to 599"
                ));
            }
        }
        // Basic authentication is on when both halves are set (Losant's rule). One half alone
        // would leave open a webhook its author meant to protect, so it is refused.
        let user = text(doc, "basicAuthUsername");
        let password = text(doc, "basicAuthPassword");
        match (user.is_empty(), password.is_empty()) {
            (false, true) => Err(
                "basicAuthPassword: basic authentication needs a password as well as \
                 basicAuthUsername (or neither, for a webhook without it)"
                    .into(),
            ),
            (true, false) => Err(
                "basicAuthUsername: basic authentication needs a username as well as \
                 basicAuthPassword (or neither, for a webhook without it)"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// Records a created or changed webhook. A document that does not pass [`Webhooks::check`]
    /// (checked when saved, so only a stored document from elsewhere) is logged and dropped:
    /// its URL stops answering rather than answering wrongly.
    pub fn apply(&self, doc: &Value) {
        let id = text(doc, "id");
        let mut registry = self.registry.write().unwrap_or_else(|p| p.into_inner());
        registry.remove(id);
        match WebhookSettings::from_doc(doc) {
            Ok((token, settings)) => {
                registry.tokens.insert(id.to_owned(), token.clone());
                registry.by_token.insert(token, Arc::new(settings));
            }
            Err(e) => {
                tracing::error!(webhook = %id, error = %e, "webhook not registered");
            }
        }
    }

    /// Forgets a deleted webhook.
    pub fn remove(&self, webhook_id: &str) {
        self.registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(webhook_id);
    }

    /// Forgets a deleted application's webhooks.
    pub fn remove_application(&self, application_id: &str) {
        let mut registry = self.registry.write().unwrap_or_else(|p| p.into_inner());
        let Registry { by_token, tokens } = &mut *registry;
        by_token.retain(|_, settings| {
            let keep = settings.application_id != application_id;
            if !keep {
                tokens.remove(&settings.webhook_id);
            }
            keep
        });
    }

    /// The webhook a public URL names, if any (disabled ones included: the route decides).
    pub fn by_token(&self, token: &str) -> Option<Arc<WebhookSettings>> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_token
            .get(token)
            .cloned()
    }
}

/// Fills the registry with every stored webhook; called once at start, before requests are
/// served.
pub async fn load(store: &dyn Store, webhooks: &Webhooks) -> Result<(), StoreError> {
    let docs = store.all_resources(ResourceKind::Webhook).await?;
    let stored: std::collections::HashSet<&str> = docs
        .iter()
        .filter_map(|doc| doc.get("id").and_then(Value::as_str))
        .collect();
    // Loaded again after changes may have been missed: what is gone from the store goes here.
    let gone: Vec<String> = webhooks
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .tokens
        .keys()
        .filter(|id| !stored.contains(id.as_str()))
        .cloned()
        .collect();
    for id in gone {
        webhooks.remove(&id);
    }
    for doc in &docs {
        webhooks.apply(doc);
    }
    Ok(())
}

/// The `webhook` trigger: `key` names the webhook (its id); the config is empty.
#[derive(serde::Deserialize)]
pub(crate) struct Config {}

pub fn compile(spec: &crate::triggers::TriggerSpec<'_>) -> Result<(), crate::error::CompileError> {
    let _: Config = spec.config()?;
    let key = spec.key.unwrap_or_default();
    if !flowd_model::id::is_id(key) {
        return Err(spec.error(format!(
            "key must be the id of a webhook of the application, not \"{key}\""
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowd_store::{ApplicationStore, ResourceStore};
    use serde_json::json;

    const APP: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
    const OTHER_APP: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";

    fn doc(id: &str, application_id: &str, token: &str) -> Value {
        json!({"id": id, "webhookId": id, "applicationId": application_id, "name": "hook",
               "token": token})
    }

    #[test]
    fn check_refuses_what_flowd_cannot_honour_naming_the_field() {
        let base = doc("1", APP, "t");
        assert_eq!(Webhooks::check(&base), Ok(()));
        for kind in ["facebook", "fitbit", "twilio", "alexa"] {
            let mut d = base.clone();
            d["verificationType"] = json!(kind);
            let e = Webhooks::check(&d).unwrap_err();
            assert!(
                e.starts_with("verificationType:") && e.contains(kind),
                "{e}"
            );
        }
        let mut none = base.clone();
        none["verificationType"] = json!("none");
        none["verificationCode"] = json!("ignored");
        assert_eq!(Webhooks::check(&none), Ok(()));

        let mut socket = base.clone();
        socket["isWebsocket"] = json!(true);
        assert!(Webhooks::check(&socket)
            .unwrap_err()
            .starts_with("isWebsocket:"));
        socket["isWebsocket"] = json!(false);
        assert_eq!(Webhooks::check(&socket), Ok(()));

        let mut informational = base.clone();
        informational["responseCode"] = json!(101);
        assert!(Webhooks::check(&informational)
            .unwrap_err()
            .starts_with("responseCode:"));
        informational["responseCode"] = json!(204);
        assert_eq!(Webhooks::check(&informational), Ok(()));
    }

    #[test]
    fn basic_auth_needs_both_halves() {
        let mut d = doc("1", APP, "t");
        d["basicAuthUsername"] = json!("user");
        assert!(Webhooks::check(&d)
            .unwrap_err()
            .starts_with("basicAuthPassword:"));
        d["basicAuthPassword"] = json!("secret");
        assert_eq!(Webhooks::check(&d), Ok(()));
        d["basicAuthUsername"] = json!("");
        assert!(Webhooks::check(&d)
            .unwrap_err()
            .starts_with("basicAuthUsername:"));
        // Both empty: no basic authentication, as when neither is set.
        d["basicAuthPassword"] = json!("");
        assert_eq!(Webhooks::check(&d), Ok(()));
    }

    #[test]
    fn apply_registers_by_token_with_defaults() {
        let hooks = Webhooks::new();
        assert_eq!(hooks.by_token("t1"), None);
        hooks.apply(&doc("1", APP, "t1"));
        let settings = hooks.by_token("t1").unwrap();
        assert_eq!(
            *settings,
            WebhookSettings {
                webhook_id: "1".into(),
                application_id: APP.into(),
                enabled: true,
                wait_for_reply: false,
                response_code: 200,
                basic_auth: None,
                cast_buffers_as: "utf8".into(),
                annotate_multipart: false,
            }
        );

        let mut changed = doc("1", APP, "t1");
        changed["enabled"] = json!(false);
        changed["waitForReply"] = json!(true);
        changed["responseCode"] = json!(202);
        changed["basicAuthUsername"] = json!("user");
        changed["basicAuthPassword"] = json!("secret");
        hooks.apply(&changed);
        let settings = hooks.by_token("t1").unwrap();
        assert!(!settings.enabled && settings.wait_for_reply);
        assert_eq!(settings.response_code, 202);
        assert_eq!(
            settings.basic_auth,
            Some(("user".to_owned(), "secret".to_owned()))
        );
        // The password is never printed.
        assert!(!format!("{settings:?}").contains("secret"));
    }

    #[test]
    fn a_new_token_replaces_the_old_one() {
        let hooks = Webhooks::new();
        hooks.apply(&doc("1", APP, "old"));
        hooks.apply(&doc("1", APP, "new"));
        assert_eq!(hooks.by_token("old"), None);
        assert_eq!(hooks.by_token("new").unwrap().webhook_id, "1");
    }

    #[test]
    fn a_document_flowd_cannot_honour_is_dropped() {
        let hooks = Webhooks::new();
        hooks.apply(&doc("1", APP, "t1"));
        let mut socket = doc("1", APP, "t1");
        socket["isWebsocket"] = json!(true);
        hooks.apply(&socket);
        assert_eq!(hooks.by_token("t1"), None);
        hooks.apply(&doc("2", APP, ""));
        assert_eq!(hooks.by_token(""), None);
    }

    #[test]
    fn remove_and_remove_application() {
        let hooks = Webhooks::new();
        hooks.apply(&doc("1", APP, "t1"));
        hooks.apply(&doc("2", APP, "t2"));
        hooks.apply(&doc("3", OTHER_APP, "t3"));
        hooks.remove("1");
        hooks.remove("unknown");
        assert_eq!(hooks.by_token("t1"), None);
        assert!(hooks.by_token("t2").is_some());
        hooks.remove_application(APP);
        assert_eq!(hooks.by_token("t2"), None);
        assert_eq!(hooks.by_token("t3").unwrap().application_id, OTHER_APP);
        // What was removed with its application can come back (an id is never reused, but the
        // registry must not keep a stale id → token entry that would drop the new one).
        hooks.apply(&doc("2", APP, "t2"));
        assert!(hooks.by_token("t2").is_some());
        hooks.remove("2");
        assert_eq!(hooks.by_token("t2"), None);
    }

    #[tokio::test]
    async fn load_reads_every_stored_webhook() {
        let dir = tempfile::tempdir().unwrap();
        let store = flowd_store::sqlite::SqliteStore::open(dir.path())
            .await
            .unwrap();
        let now = flowd_model::time::now_iso();
        for (name, app) in [("a", APP), ("b", OTHER_APP)] {
            store
                .insert_application(&json!({"id": app, "name": name, "creationDate": now,
                                             "lastUpdated": now}))
                .await
                .unwrap();
        }
        for (id, app, token) in [
            ("cccccccccccccccccccccccc", APP, "t1"),
            ("dddddddddddddddddddddddd", OTHER_APP, "t2"),
        ] {
            let mut d = doc(id, app, token);
            d["creationDate"] = json!(now);
            d["lastUpdated"] = json!(now);
            store
                .insert_resource(ResourceKind::Webhook, &d)
                .await
                .unwrap();
        }
        let hooks = Webhooks::new();
        load(&store, &hooks).await.unwrap();
        assert_eq!(hooks.by_token("t1").unwrap().application_id, APP);
        assert_eq!(hooks.by_token("t2").unwrap().application_id, OTHER_APP);
        store.close().await.unwrap();
    }
}
