//! API tokens in SQLite: the shared `api_tokens` document table, with the hash and the
//! application taken from the [`TokenRecord`] rather than from the document.

use super::docs::{execute, select, DocTableOps, Sqlite};
use super::SqliteStore;
use crate::shared::documents::{
    delete_user_token_sql, token_by_hash_sql, token_record, token_row, token_sql, user_tokens_sql,
    TOKENS,
};
use crate::shared::sql::SqlQuery;
use crate::{ListQuery, Page, StoreResult, TokenRecord, TokenStore};
use async_trait::async_trait;
use rusqlite::Connection;

fn tokens(conn: &Connection, query: &SqlQuery) -> StoreResult<Vec<TokenRecord>> {
    select(conn, query, |row| token_record(row))
}

fn first_token(conn: &Connection, query: &SqlQuery) -> StoreResult<Option<TokenRecord>> {
    Ok(tokens(conn, query)?.into_iter().next())
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |tx| {
            // The hash is not part of the document (it is never shown): it is an extra column.
            TOKENS.insert_row(
                tx,
                token_row(&token)?,
                &[("token_hash", token.token_hash.clone())],
            )
        })
        .await
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| first_token(conn, &token_by_hash_sql::<Sqlite>(&token_hash)))
            .await
    }

    async fn get_token(&self, application_id: &str, id: &str) -> StoreResult<Option<TokenRecord>> {
        let (application_id, id) = (application_id.to_owned(), id.to_owned());
        self.read(move |conn| first_token(conn, &token_sql::<Sqlite>(&application_id, &id)))
            .await
    }

    async fn update_token(&self, token: &TokenRecord) -> StoreResult<bool> {
        let token = token.clone();
        self.write(move |tx| TOKENS.update_row(tx, token_row(&token)?))
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
        self.read(|conn| tokens(conn, &user_tokens_sql::<Sqlite>()))
            .await
    }

    async fn delete_user_token(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |tx| Ok(execute(tx, &delete_user_token_sql::<Sqlite>(&id))? > 0))
            .await
    }
}
