//! API tokens in PostgreSQL: the shared `api_tokens` document table, with the hash and the
//! application taken from the [`TokenRecord`] rather than from the document.

use super::docs::{execute, select, DocTableOps, Postgres};
use super::PostgresStore;
use crate::shared::documents::{
    delete_user_token_sql, token_by_hash_sql, token_record, token_row, token_sql, user_tokens_sql,
    TOKENS,
};
use crate::shared::sql::SqlQuery;
use crate::{ListQuery, Page, StoreResult, TokenRecord, TokenStore};
use async_trait::async_trait;

impl PostgresStore {
    async fn tokens(&self, query: &SqlQuery) -> StoreResult<Vec<TokenRecord>> {
        select(&self.client().await?, query, token_record).await
    }

    async fn first_token(&self, query: &SqlQuery) -> StoreResult<Option<TokenRecord>> {
        Ok(self.tokens(query).await?.into_iter().next())
    }
}

#[async_trait]
impl TokenStore for PostgresStore {
    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()> {
        // The hash is not part of the document (it is never shown): it is an extra column.
        TOKENS
            .insert_row(
                &self.client().await?,
                token_row(token)?,
                &[("token_hash", token.token_hash.clone())],
            )
            .await
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>> {
        self.first_token(&token_by_hash_sql::<Postgres>(token_hash))
            .await
    }

    async fn get_token(&self, application_id: &str, id: &str) -> StoreResult<Option<TokenRecord>> {
        self.first_token(&token_sql::<Postgres>(application_id, id))
            .await
    }

    async fn update_token(&self, token: &TokenRecord) -> StoreResult<bool> {
        TOKENS
            .update_row(&self.client().await?, token_row(token)?)
            .await
    }

    async fn delete_token(&self, application_id: &str, id: &str) -> StoreResult<bool> {
        TOKENS
            .delete(&self.client().await?, Some(application_id), id)
            .await
    }

    async fn list_tokens(&self, application_id: &str, query: &ListQuery) -> StoreResult<Page> {
        TOKENS
            .list(&self.client().await?, Some(application_id), query, &[])
            .await
    }

    async fn user_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        self.tokens(&user_tokens_sql::<Postgres>()).await
    }

    async fn delete_user_token(&self, id: &str) -> StoreResult<bool> {
        let query = delete_user_token_sql::<Postgres>(id);
        Ok(execute(&self.client().await?, &query).await? > 0)
    }
}
