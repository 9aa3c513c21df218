//! Authentication (who is calling) and authorization (may they do this).
//!
//! Tokens are stored only as SHA-256 hashes. A request's bearer token is hashed, looked up by
//! hash, and the stored hash is compared to the computed one in constant time. Which scopes
//! allow which action lives in one table, `flowd_model::scope::ACTIONS`; handlers call
//! [`Principal::require`] with their action and the application in the path.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use flowd_model::scope::{allows, Action};
use flowd_store::TokenRecord;
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Hex SHA-256 of a token string: what the store keeps.
pub fn hash_token(token: &str) -> String {
    flowd_model::id::hex_lower(&Sha256::digest(token.as_bytes()))
}

/// A new token string: 48 random bytes, URL-safe base64 (64 characters).
pub fn generate_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How long a token looked up in the store is trusted without looking again. Changes made
/// through this server (status, deletion) take effect at once (the cache is cleared); a user
/// token revoked from the command line stops working within this time.
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Tokens kept in the cache; past it, the cache starts over.
const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// A token as the cache keeps it: its record, and what every request checks, read from its
/// document once (looking the fields up again on each request showed in a press's profile).
struct Credential {
    record: TokenRecord,
    inactive: bool,
    /// `None` when the token does not expire; an unreadable date counts as already past.
    expires: Option<chrono::DateTime<chrono::Utc>>,
    scopes: Arc<[String]>,
}

impl Credential {
    fn new(record: TokenRecord) -> Credential {
        let doc = &record.doc;
        let inactive = doc.get("status").and_then(Value::as_str) == Some("inactive");
        let expires = doc
            .get("expirationDate")
            .and_then(Value::as_str)
            .map(|text| {
                flowd_model::time::parse_iso(text)
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
            });
        let scopes = doc
            .get("scope")
            .and_then(Value::as_array)
            .map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Credential {
            record,
            inactive,
            expires,
            scopes,
        }
    }
}

/// Recently used tokens by hash, so that a request does not read the store to authenticate.
#[derive(Default)]
pub struct TokenCache {
    /// Shared credentials: every request reads one, and copying its document was ~2 % of a press.
    entries: std::sync::Mutex<flowd_model::id::IdMap<(Arc<Credential>, std::time::Instant)>>,
    /// Bumped by `clear`; a lookup that started before a clear does not insert what it read.
    epoch: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Arc<Credential>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(credential, _)| Arc::clone(credential))
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn put(&self, hash: String, credential: Arc<Credential>, epoch: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if self.epoch() != epoch {
            return;
        }
        if entries.len() >= TOKEN_CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(hash, (credential, std::time::Instant::now()));
    }

    /// Forgets every token (after a token or application changed).
    pub fn clear(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: String,
    /// The only application an application token reaches; `None` for user-level tokens.
    pub application_id: Option<String>,
    /// Shared with the cached credential.
    pub scopes: Arc<[String]>,
}

impl Principal {
    /// Fails with 403 unless the token may perform `action`, on `application_id` when given.
    pub fn require(&self, action: Action, application_id: Option<&str>) -> ApiResult<()> {
        if let (Some(own), Some(wanted)) = (&self.application_id, application_id) {
            if !own.eq_ignore_ascii_case(wanted) {
                return Err(ApiError::Forbidden(
                    "This token belongs to another application".into(),
                ));
            }
        }
        if !allows(&self.scopes, action) {
            return Err(ApiError::Forbidden(format!(
                "This token's scopes do not allow {}",
                action.rule().scope
            )));
        }
        Ok(())
    }

    /// The `createdByType` / `lastUpdatedByType` of documents this caller writes.
    pub fn actor_type(&self) -> &'static str {
        "apiToken"
    }
}

fn bearer(parts: &Parts) -> ApiResult<&str> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("Authorization header is missing".into()))?;
    let text = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Authorization header is not text".into()))?;
    let (scheme, token) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("Authorization must be 'Bearer <token>'".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "Authorization must be 'Bearer <token>'".into(),
        ));
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = bearer(parts)?;
        let hash = hash_token(token);
        let credential = match state.tokens.get(&hash) {
            Some(credential) => Some(credential),
            None => {
                let epoch = state.tokens.epoch();
                let found = state
                    .store
                    .token_by_hash(&hash)
                    .await?
                    .map(|record| Arc::new(Credential::new(record)));
                if let Some(credential) = &found {
                    state
                        .tokens
                        .put(hash.clone(), Arc::clone(credential), epoch);
                }
                found
            }
        };
        let credential = credential
            .filter(|c| bool::from(c.record.token_hash.as_bytes().ct_eq(hash.as_bytes())))
            .ok_or_else(|| ApiError::Unauthorized("Invalid access token".into()))?;
        if credential.inactive {
            return Err(ApiError::Unauthorized("This token is inactive".into()));
        }
        if credential.expires.is_some_and(|t| t <= chrono::Utc::now()) {
            return Err(ApiError::Unauthorized("This token has expired".into()));
        }
        Ok(Principal {
            token_id: credential.record.id.clone(),
            application_id: credential.record.application_id.clone(),
            scopes: Arc::clone(&credential.scopes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_token("x").len(), 64);
        // SHA-256 in lower-case hex (stored hashes must keep matching).
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_credential_reads_its_document_once_and_strictly() {
        let record = |doc: Value| TokenRecord {
            id: "t".into(),
            application_id: None,
            token_hash: String::new(),
            doc,
        };
        let plain = Credential::new(record(serde_json::json!({"scope": ["all.Application", 3]})));
        assert!(!plain.inactive);
        assert_eq!(plain.expires, None);
        assert_eq!(&*plain.scopes, ["all.Application".to_owned()]);
        let off = Credential::new(record(serde_json::json!({
            "status": "inactive", "expirationDate": "2030-01-02T03:04:05.000Z"})));
        assert!(off.inactive);
        assert_eq!(
            off.expires,
            flowd_model::time::parse_iso("2030-01-02T03:04:05.000Z")
        );
        assert!(off.scopes.is_empty());
        // A date that cannot be read counts as already past, as it did when read per request.
        let unreadable = Credential::new(record(serde_json::json!({"expirationDate": "soon"})));
        assert!(unreadable.expires.is_some_and(|t| t <= chrono::Utc::now()));
    }

    #[test]
    fn application_tokens_reach_only_their_application() {
        let p = Principal {
            token_id: "t".into(),
            application_id: Some("aaaaaaaaaaaaaaaaaaaaaaaa".into()),
            scopes: Arc::from(["all.Application".to_owned()]),
        };
        assert!(p
            .require(Action::FlowGet, Some("aaaaaaaaaaaaaaaaaaaaaaaa"))
            .is_ok());
        assert!(matches!(
            p.require(Action::FlowGet, Some("bbbbbbbbbbbbbbbbbbbbbbbb")),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            p.require(Action::ApplicationsGet, None),
            Err(ApiError::Forbidden(_))
        ));
    }
}
