//! User-level tokens, which no API route creates: the owner token and the ones an operator
//! makes with `flowd token create`.
//!
//! On first start (no owner token in the store) flowd makes one with scope `all.User`; the caller
//! prints it once and writes it to `<data-dir>/owner-token`. When the operator supplies the value
//! (`FLOWD_OWNER_TOKEN`), that value is the owner token, replacing an earlier owner token. The
//! owner token is the user token named [`OWNER_NAME`].

use crate::auth::{generate_token, hash_token};
use flowd_model::schema::{validate, SchemaName};
use flowd_model::scope::OWNER_SCOPE;
use flowd_store::{Store, StoreError, StoreResult, TokenRecord};
use serde_json::{json, Value};

/// The name that marks the owner token among user tokens.
pub const OWNER_NAME: &str = "owner";

/// What happened to the owner token at start-up.
#[derive(Debug, PartialEq, Eq)]
pub enum OwnerToken {
    /// A new token was made; this is the only time its value is known.
    Created(String),
    /// The supplied value is now the owner token.
    Supplied,
    /// An owner token already existed and was kept.
    Existing,
}

fn is_owner(token: &TokenRecord) -> bool {
    token.doc.get("name").and_then(Value::as_str) == Some(OWNER_NAME)
}

/// Ensures there is an owner token.
pub async fn ensure_owner_token(
    store: &dyn Store,
    supplied: Option<&str>,
) -> StoreResult<OwnerToken> {
    let owners: Vec<TokenRecord> = store
        .user_tokens()
        .await?
        .into_iter()
        .filter(is_owner)
        .collect();
    if let Some(value) = supplied {
        let hash = hash_token(value);
        if owners.iter().any(|t| t.token_hash == hash) {
            return Ok(OwnerToken::Supplied);
        }
        for token in &owners {
            store.delete_user_token(&token.id).await?;
        }
        match insert_user_token(store, &hash, owner_request()).await {
            // Nodes of a cluster starting at once on one store: another one stored it first.
            Err(StoreError::Conflict(_)) => {}
            inserted => {
                inserted?;
            }
        }
        return Ok(OwnerToken::Supplied);
    }
    if !owners.is_empty() {
        return Ok(OwnerToken::Existing);
    }
    let value = generate_token();
    insert_user_token(store, &hash_token(&value), owner_request()).await?;
    Ok(OwnerToken::Created(value))
}

fn owner_request() -> Value {
    json!({"name": OWNER_NAME, "description": "Made by flowd at first start", "scope": [OWNER_SCOPE]})
}

/// Why a user token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UserTokenError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes a user-level token from an `apiTokenPost` body (`name`, `scope`, optional
/// `description`, `expirationDate`, `status`) and returns its value and document.
pub async fn create_user_token(
    store: &dyn Store,
    request: Value,
) -> Result<(String, Value), UserTokenError> {
    validate(SchemaName::ApiTokenPost, &request).map_err(|e| UserTokenError::Invalid(e.0))?;
    if request.get("name").and_then(Value::as_str) == Some(OWNER_NAME) {
        return Err(UserTokenError::Invalid(format!(
            "name: \"{OWNER_NAME}\" is reserved for the owner token"
        )));
    }
    for role_field in ["defaultRole", "orgRoles"] {
        if request.get(role_field).is_some() {
            return Err(UserTokenError::Invalid(format!(
                "{role_field}: flowd has no organizations, so tokens have no roles"
            )));
        }
    }
    if let Some(expiry) = request.get("expirationDate").and_then(Value::as_str) {
        let future = flowd_model::time::parse_iso(expiry).is_some_and(|t| t > chrono::Utc::now());
        if !future {
            return Err(UserTokenError::Invalid(
                "expirationDate: must be a date-time in the future".into(),
            ));
        }
    }
    let value = generate_token();
    let doc = insert_user_token(store, &hash_token(&value), request).await?;
    Ok((value, doc))
}

async fn insert_user_token(store: &dyn Store, hash: &str, request: Value) -> StoreResult<Value> {
    let id = flowd_model::id::new_id();
    let now = flowd_model::time::now_iso();
    let mut doc = json!({
        "id": id, "apiTokenId": id, "ownerId": id, "ownerType": "user",
        "description": "", "status": "active", "creationDate": now, "lastUpdated": now,
    });
    if let (Some(target), Some(fields)) = (doc.as_object_mut(), request.as_object()) {
        for (key, value) in fields {
            target.insert(key.clone(), value.clone());
        }
    }
    store
        .insert_token(&TokenRecord {
            id,
            application_id: None,
            token_hash: hash.to_owned(),
            doc: doc.clone(),
        })
        .await?;
    Ok(doc)
}
