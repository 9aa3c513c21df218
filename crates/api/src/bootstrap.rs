//! The owner token. On first start (no user-level token in the store) flowd makes one with scope
//! `all.User`; the caller prints it once and writes it to `<data-dir>/owner-token`. When the
//! operator supplies the value (`FLOWD_OWNER_TOKEN`), that value is the owner token, replacing
//! any earlier one.

use crate::auth::{generate_token, hash_token};
use flowd_model::scope::OWNER_SCOPE;
use flowd_store::{Store, StoreResult, TokenRecord};
use serde_json::json;

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

/// Ensures there is an owner token.
pub async fn ensure_owner_token(
    store: &dyn Store,
    supplied: Option<&str>,
) -> StoreResult<OwnerToken> {
    let existing = store.user_tokens().await?;
    if let Some(value) = supplied {
        let hash = hash_token(value);
        if existing.iter().any(|t| t.token_hash == hash) {
            return Ok(OwnerToken::Supplied);
        }
        for token in &existing {
            store.delete_user_token(&token.id).await?;
        }
        insert_owner(store, &hash).await?;
        return Ok(OwnerToken::Supplied);
    }
    if !existing.is_empty() {
        return Ok(OwnerToken::Existing);
    }
    let value = generate_token();
    insert_owner(store, &hash_token(&value)).await?;
    Ok(OwnerToken::Created(value))
}

async fn insert_owner(store: &dyn Store, hash: &str) -> StoreResult<()> {
    let id = flowd_model::id::new_id();
    let now = flowd_model::time::now_iso();
    let doc = json!({
        "id": id, "apiTokenId": id, "ownerId": id, "ownerType": "user",
        "name": "owner", "description": "Made by flowd at first start", "scope": [OWNER_SCOPE],
        "status": "active", "creationDate": now, "lastUpdated": now,
    });
    store
        .insert_token(&TokenRecord {
            id,
            application_id: None,
            token_hash: hash.to_owned(),
            doc,
        })
        .await
}
