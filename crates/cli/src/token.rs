//! `flowd token …`: user-level tokens, made and revoked by the operator on the data dir.
//! Application tokens are made through the API (`POST /applications/{id}/tokens`); user tokens
//! (for example `all.User.read` for a dashboard, `all.User.bounded` for automation that must not
//! manage tokens) have no API route, so they are made here. The server may be running: SQLite
//! lets both processes use the database, and PostgreSQL any number.

use crate::store::StoreLocation;
use flowd_api::bootstrap::{create_user_token, OWNER_NAME};
use serde_json::{json, Value};
use std::path::Path;

/// Runs a token subcommand; the error is a message for the terminal.
pub async fn run(
    data_dir: &Path,
    location: &StoreLocation,
    command: crate::TokenCommand,
) -> Result<(), String> {
    if *location == StoreLocation::Sqlite && !data_dir.join("flowd.db").exists() {
        return Err(format!(
            "{} holds no flowd database; run `flowd serve` on it first or pass --data-dir",
            data_dir.display()
        ));
    }
    let store = location.open(data_dir).await.map_err(|e| e.to_string())?;
    let result = match command {
        crate::TokenCommand::Create {
            name,
            scope,
            description,
            expires,
        } => {
            let mut request = json!({"name": name, "scope": scope});
            if let Some(description) = description {
                request["description"] = json!(description);
            }
            if let Some(expires) = expires {
                request["expirationDate"] = json!(expires);
            }
            create_user_token(&*store, request)
                .await
                .map_err(|e| e.to_string())
                .map(|(value, doc)| {
                    eprintln!(
                        "flowd: created user token {} with scope {}; its value is shown only once:",
                        doc["id"].as_str().unwrap_or_default(),
                        doc["scope"]
                    );
                    println!("{value}");
                })
        }
        crate::TokenCommand::List => {
            store
                .user_tokens()
                .await
                .map_err(|e| e.to_string())
                .map(|tokens| {
                    for token in tokens {
                        let field = |name: &str| {
                            token
                                .doc
                                .get(name)
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned()
                        };
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            token.id,
                            field("name"),
                            field("status"),
                            token
                                .doc
                                .get("scope")
                                .map(Value::to_string)
                                .unwrap_or_default(),
                            field("expirationDate")
                        );
                    }
                })
        }
        crate::TokenCommand::Revoke { id } => {
            let tokens = store.user_tokens().await.map_err(|e| e.to_string())?;
            match tokens.iter().find(|t| t.id == id) {
                None => Err(format!("no user token has id {id}")),
                Some(t) if t.doc.get("name").and_then(Value::as_str) == Some(OWNER_NAME) => Err(
                    "the owner token cannot be revoked; set FLOWD_OWNER_TOKEN to replace it".into(),
                ),
                Some(_) => store
                    .delete_user_token(&id)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            }
        }
    };
    store.close().await.map_err(|e| e.to_string())?;
    result
}
