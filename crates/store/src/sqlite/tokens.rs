use super::docs::{parse_doc, DocTable};
use super::SqliteStore;
use crate::{Column, ListQuery, Page, StoreError, StoreResult, TokenRecord, TokenStore};
use async_trait::async_trait;
use rusqlite::OptionalExtension;

const TOKENS: DocTable = DocTable {
    table: "api_tokens",
    parent: Some(("application_id", "applicationId")),
    fields: &[
        ("name", "name"),
        ("status", "status"),
        ("expiration_date", "expirationDate"),
        ("creation_date", "creationDate"),
        ("last_updated", "lastUpdated"),
    ],
    columns: &[
        (Column::Id, "id"),
        (Column::Name, "name"),
        (Column::Status, "status"),
        (Column::ExpirationDate, "expiration_date"),
        (Column::CreationDate, "creation_date"),
        (Column::LastUpdated, "last_updated"),
    ],
};

const SELECT: &str = "SELECT id, application_id, token_hash, doc FROM api_tokens";

fn record(row: &rusqlite::Row) -> rusqlite::Result<TokenRecord> {
    let doc: String = row.get(3)?;
    Ok(TokenRecord {
        id: row.get(0)?,
        application_id: row.get(1)?,
        token_hash: row.get(2)?,
        doc: parse_doc(&doc)?,
    })
}

/// `TOKENS.update` copies the parent column from the document's `applicationId`, but Losant's
/// `apiToken` document has no such field (it names its owner with `ownerId`/`ownerType`): the
/// record, not the document, says which application a token reaches.
fn set_application(tx: &rusqlite::Transaction, token: &TokenRecord) -> StoreResult<()> {
    tx.execute(
        "UPDATE api_tokens SET application_id = ?1 WHERE id = ?2",
        rusqlite::params![token.application_id, token.id],
    )?;
    Ok(())
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |tx| {
            // The hash is not part of the document (it is never shown): insert the row with it,
            // then fill the document columns.
            tx.execute(
                "INSERT INTO api_tokens (id, application_id, token_hash, name, status, expiration_date, \
                 creation_date, last_updated, doc) VALUES (?1, ?2, ?3, '', '', NULL, '', '', '{}')",
                rusqlite::params![token.id, token.application_id, token.token_hash],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::Conflict("api_tokens already exists".into())
                }
                other => other.into(),
            })?;
            TOKENS.update(tx, &token.doc)?;
            set_application(tx, &token)?;
            Ok(())
        })
        .await
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("{SELECT} WHERE token_hash = ?1"),
                    [token_hash],
                    record,
                )
                .optional()?)
        })
        .await
    }

    async fn get_token(&self, application_id: &str, id: &str) -> StoreResult<Option<TokenRecord>> {
        let (application_id, id) = (application_id.to_owned(), id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("{SELECT} WHERE id = ?1 AND application_id = ?2"),
                    [id, application_id],
                    record,
                )
                .optional()?)
        })
        .await
    }

    async fn update_token(&self, token: &TokenRecord) -> StoreResult<bool> {
        let token = token.clone();
        self.write(move |tx| {
            let updated = TOKENS.update(tx, &token.doc)?;
            if updated {
                set_application(tx, &token)?;
            }
            Ok(updated)
        })
        .await
    }

    async fn delete_token(&self, application_id: &str, id: &str) -> StoreResult<bool> {
        let (application_id, id) = (application_id.to_owned(), id.to_owned());
        self.write(move |tx| TOKENS.delete(tx, Some(&application_id), &id))
            .await
    }

    async fn list_tokens(&self, application_id: &str, query: &ListQuery) -> StoreResult<Page> {
        let (application_id, query) = (application_id.to_owned(), query.clone());
        self.read(move |conn| TOKENS.list(conn, Some(&application_id), &query, &[]))
            .await
    }

    async fn user_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        self.read(|conn| {
            let mut statement = conn.prepare(&format!("{SELECT} WHERE application_id IS NULL"))?;
            let rows = statement.query_map([], record)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_user_token(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |tx| {
            Ok(tx.execute(
                "DELETE FROM api_tokens WHERE id = ?1 AND application_id IS NULL",
                [id],
            )? > 0)
        })
        .await
    }
}
