//! PostgreSQL's spelling of the shared SQL ([`Postgres`]), the runner of shared statements on a
//! pooled connection or a transaction ([`execute`], [`select`]), and of the shared
//! document-table statements ([`DocTableOps`]): the tables and their SQL are described once in
//! [`crate::shared::documents`].

use super::insert_error;
use crate::shared::documents::{parse_doc, DocTable, RowValues};
use crate::shared::sql::{direction_sql, ResultRow, SqlDialect, SqlParam, SqlQuery};
use crate::{ListQuery, Page, SortDirection, StoreResult};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// PostgreSQL's SQL. Every text column is `COLLATE "C"` (see the migrations), so `lower()` on
/// one folds ASCII letters only and comparisons are by bytes, as SQLite's `NOCASE` and `LIKE`.
pub(crate) struct Postgres;

impl SqlDialect for Postgres {
    const INSERTION_ORDER: &'static str = "seq";

    const LOCK_ROWS: &'static str = " FOR UPDATE";

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    /// The pattern is folded under the same "C" collation as the column, not the database's.
    fn like_ignoring_case(column: &str, pattern: &str) -> String {
        format!("lower({column}) LIKE lower({pattern} COLLATE \"C\") ESCAPE '\\'")
    }

    /// NULLs placed as SQLite places them (lowest).
    fn order_ignoring_case(column: &str, direction: SortDirection) -> String {
        let nulls = match direction {
            SortDirection::Asc => "FIRST",
            SortDirection::Desc => "LAST",
        };
        format!("lower({column}) {} NULLS {nulls}", direction_sql(direction))
    }

    fn byte_length(column: &str) -> String {
        format!("octet_length({column})")
    }
}

/// A typed NULL for text parameters.
static NULL_TEXT: Option<String> = None;

/// The parameters of `query`, as tokio-postgres takes them.
pub(crate) fn params(params: &[SqlParam]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| match param {
            SqlParam::Text(text) => text as &(dyn ToSql + Sync),
            SqlParam::Null => &NULL_TEXT,
            SqlParam::Int(n) => n,
        })
        .collect()
}

impl ResultRow for Row {
    fn text(&self, index: usize) -> StoreResult<String> {
        Ok(self.try_get(index)?)
    }

    fn optional_text(&self, index: usize) -> StoreResult<Option<String>> {
        Ok(self.try_get(index)?)
    }

    fn int(&self, index: usize) -> StoreResult<i64> {
        Ok(self.try_get(index)?)
    }
}

/// Runs `query`; returns the rows changed.
pub(crate) async fn execute(client: &impl GenericClient, query: &SqlQuery) -> StoreResult<u64> {
    let statement = client.prepare_cached(&query.sql).await?;
    Ok(client.execute(&statement, &params(&query.params)).await?)
}

/// Runs `query` and reads every row with `read`.
pub(crate) async fn select<T>(
    client: &impl GenericClient,
    query: &SqlQuery,
    read: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let statement = client.prepare_cached(&query.sql).await?;
    let rows = client.query(&statement, &params(&query.params)).await?;
    rows.iter().map(read).collect()
}

/// Every row of `query`'s first column, as documents.
pub(crate) async fn select_docs(
    client: &impl GenericClient,
    query: &SqlQuery,
) -> StoreResult<Vec<Value>> {
    select(client, query, |row| parse_doc(&row.text(0)?)).await
}

/// The shared document-table statements, run on PostgreSQL.
pub(crate) trait DocTableOps {
    async fn insert(&self, client: &impl GenericClient, doc: &Value) -> StoreResult<()>;
    /// Inserts a row made by the caller, with extra (column, value) pairs after it.
    async fn insert_row(
        &self,
        client: &impl GenericClient,
        row: RowValues,
        extra_columns: &[(&str, String)],
    ) -> StoreResult<()>;
    async fn update(&self, client: &impl GenericClient, doc: &Value) -> StoreResult<bool>;
    async fn update_row(&self, client: &impl GenericClient, row: RowValues) -> StoreResult<bool>;
    async fn get(
        &self,
        client: &impl GenericClient,
        parent_id: Option<&str>,
        id: &str,
    ) -> StoreResult<Option<Value>>;
    async fn delete(
        &self,
        client: &impl GenericClient,
        parent_id: Option<&str>,
        id: &str,
    ) -> StoreResult<bool>;
    async fn list(
        &self,
        client: &impl GenericClient,
        parent_id: Option<&str>,
        query: &ListQuery,
        equal: &[(&str, String)],
    ) -> StoreResult<Page>;
}

impl DocTableOps for DocTable {
    async fn insert(&self, client: &impl GenericClient, doc: &Value) -> StoreResult<()> {
        self.insert_row(client, self.row(doc)?, &[]).await
    }

    async fn insert_row(
        &self,
        client: &impl GenericClient,
        row: RowValues,
        extra_columns: &[(&str, String)],
    ) -> StoreResult<()> {
        let query = self.insert_sql::<Postgres>(row, extra_columns);
        let statement = client.prepare_cached(&query.sql).await?;
        client
            .execute(&statement, &params(&query.params))
            .await
            .map_err(|e| insert_error(self.table, e))?;
        Ok(())
    }

    async fn update(&self, client: &impl GenericClient, doc: &Value) -> StoreResult<bool> {
        self.update_row(client, self.row(doc)?).await
    }

    async fn update_row(&self, client: &impl GenericClient, row: RowValues) -> StoreResult<bool> {
        Ok(execute(client, &self.update_sql::<Postgres>(row)).await? > 0)
    }

    async fn get(
        &self,
        client: &impl GenericClient,
        parent_id: Option<&str>,
        id: &str,
    ) -> StoreResult<Option<Value>> {
        let docs = select_docs(client, &self.get_sql::<Postgres>(parent_id, id)).await?;
        Ok(docs.into_iter().next())
    }

    async fn delete(
        &self,
        client: &impl GenericClient,
        parent_id: Option<&str>,
        id: &str,
    ) -> StoreResult<bool> {
        Ok(execute(client, &self.delete_sql::<Postgres>(parent_id, id)).await? > 0)
    }

    async fn list(
        &self,
        client: &impl GenericClient,
        parent_id: Option<&str>,
        query: &ListQuery,
        equal: &[(&str, String)],
    ) -> StoreResult<Page> {
        let list = self.list_sql::<Postgres>(parent_id, query, equal)?;
        let count = client.prepare_cached(&list.count).await?;
        let total_count: i64 = client
            .query_one(&count, &params(&list.page.params[..list.count_params]))
            .await?
            .try_get(0)?;
        Ok(Page {
            items: select_docs(client, &list.page).await?,
            total_count: total_count.max(0) as u64,
        })
    }
}
