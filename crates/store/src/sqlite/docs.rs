//! SQLite's spelling of the shared SQL ([`Sqlite`]) and the runner of the shared document-table
//! statements ([`DocTableOps`]): the tables and their SQL are described once in
//! [`crate::shared::documents`]; this runs them on a connection.

use crate::shared::documents::{parse_doc, DocTable, RowValues};
use crate::shared::sql::{direction_sql, ResultRow, SqlDialect, SqlParam, SqlQuery};
use crate::{ListQuery, Page, SortDirection, StoreError, StoreResult};
use rusqlite::types::{ToSqlOutput, Value as SqlValue};
use rusqlite::{params_from_iter, Connection, OptionalExtension, ToSql};
use serde_json::Value;

/// SQLite's SQL.
pub(crate) struct Sqlite;

impl SqlDialect for Sqlite {
    const INSERTION_ORDER: &'static str = "rowid";

    /// None needed: every write runs on the one writer connection, in a transaction.
    const LOCK_ROWS: &'static str = "";

    fn placeholder(n: usize) -> String {
        format!("?{n}")
    }

    /// SQLite's `LIKE` ignores the case of ASCII letters only.
    fn like_ignoring_case(column: &str, pattern: &str) -> String {
        format!("{column} LIKE {pattern} ESCAPE '\\'")
    }

    /// `NOCASE` folds ASCII letters only and compares bytes; SQLite sorts NULLs lowest.
    fn order_ignoring_case(column: &str, direction: SortDirection) -> String {
        format!("{column} COLLATE NOCASE {}", direction_sql(direction))
    }

    /// SQLite's `length()` of TEXT counts characters; of a BLOB, bytes.
    fn byte_length(column: &str) -> String {
        format!("length(CAST({column} AS BLOB))")
    }
}

impl ToSql for SqlParam {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlParam::Text(text) => ToSqlOutput::from(text.as_str()),
            SqlParam::Null => ToSqlOutput::Owned(SqlValue::Null),
            SqlParam::Int(n) => ToSqlOutput::from(*n),
        })
    }
}

impl ResultRow for rusqlite::Row<'_> {
    fn text(&self, index: usize) -> StoreResult<String> {
        Ok(self.get(index)?)
    }

    fn optional_text(&self, index: usize) -> StoreResult<Option<String>> {
        Ok(self.get(index)?)
    }

    fn int(&self, index: usize) -> StoreResult<i64> {
        Ok(self.get(index)?)
    }
}

impl From<StoreError> for rusqlite::Error {
    fn from(e: StoreError) -> Self {
        rusqlite::Error::ToSqlConversionFailure(Box::new(e))
    }
}

/// Runs `query`; returns the rows changed.
pub(crate) fn execute(conn: &Connection, query: &SqlQuery) -> StoreResult<usize> {
    Ok(conn
        .prepare_cached(&query.sql)?
        .execute(params_from_iter(&query.params))?)
}

/// Runs `query` and reads every row with `read`.
pub(crate) fn select<T>(
    conn: &Connection,
    query: &SqlQuery,
    read: impl Fn(&rusqlite::Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut statement = conn.prepare_cached(&query.sql)?;
    let mut rows = statement.query(params_from_iter(&query.params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}

/// Every row of `query`'s first column, as documents.
pub(crate) fn select_docs(conn: &Connection, query: &SqlQuery) -> StoreResult<Vec<Value>> {
    select(conn, query, |row| parse_doc(&row.text(0)?))
}

/// A failed insert: a broken constraint (a unique id, name or hash, a missing parent) is a
/// `Conflict`; anything else is the backend's.
pub(crate) fn insert_error(table: &str, e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(format!("{table} already exists"))
        }
        other => other.into(),
    }
}

/// The shared document-table statements, run on SQLite.
pub(crate) trait DocTableOps {
    fn insert(&self, conn: &Connection, doc: &Value) -> StoreResult<()>;
    /// Inserts a row made by the caller, with extra (column, value) pairs after it.
    fn insert_row(
        &self,
        conn: &Connection,
        row: RowValues,
        extra_columns: &[(&str, String)],
    ) -> StoreResult<()>;
    fn update(&self, conn: &Connection, doc: &Value) -> StoreResult<bool>;
    fn update_row(&self, conn: &Connection, row: RowValues) -> StoreResult<bool>;
    fn get(
        &self,
        conn: &Connection,
        parent_id: Option<&str>,
        id: &str,
    ) -> StoreResult<Option<Value>>;
    fn delete(&self, conn: &Connection, parent_id: Option<&str>, id: &str) -> StoreResult<bool>;
    fn list(
        &self,
        conn: &Connection,
        parent_id: Option<&str>,
        query: &ListQuery,
        equal: &[(&str, String)],
    ) -> StoreResult<Page>;
}

impl DocTableOps for DocTable {
    fn insert(&self, conn: &Connection, doc: &Value) -> StoreResult<()> {
        self.insert_row(conn, self.row(doc)?, &[])
    }

    fn insert_row(
        &self,
        conn: &Connection,
        row: RowValues,
        extra_columns: &[(&str, String)],
    ) -> StoreResult<()> {
        let query = self.insert_sql::<Sqlite>(row, extra_columns);
        conn.prepare_cached(&query.sql)?
            .execute(params_from_iter(&query.params))
            .map_err(|e| insert_error(self.table, e))?;
        Ok(())
    }

    fn update(&self, conn: &Connection, doc: &Value) -> StoreResult<bool> {
        self.update_row(conn, self.row(doc)?)
    }

    fn update_row(&self, conn: &Connection, row: RowValues) -> StoreResult<bool> {
        Ok(execute(conn, &self.update_sql::<Sqlite>(row))? > 0)
    }

    fn get(
        &self,
        conn: &Connection,
        parent_id: Option<&str>,
        id: &str,
    ) -> StoreResult<Option<Value>> {
        let query = self.get_sql::<Sqlite>(parent_id, id);
        let text: Option<String> = conn
            .prepare_cached(&query.sql)?
            .query_row(params_from_iter(&query.params), |r| r.get(0))
            .optional()?;
        text.map(|t| parse_doc(&t)).transpose()
    }

    fn delete(&self, conn: &Connection, parent_id: Option<&str>, id: &str) -> StoreResult<bool> {
        Ok(execute(conn, &self.delete_sql::<Sqlite>(parent_id, id))? > 0)
    }

    fn list(
        &self,
        conn: &Connection,
        parent_id: Option<&str>,
        query: &ListQuery,
        equal: &[(&str, String)],
    ) -> StoreResult<Page> {
        let list = self.list_sql::<Sqlite>(parent_id, query, equal)?;
        let total_count: i64 = conn.prepare_cached(&list.count)?.query_row(
            params_from_iter(&list.page.params[..list.count_params]),
            |r| r.get(0),
        )?;
        Ok(Page {
            items: select_docs(conn, &list.page)?,
            total_count: total_count.max(0) as u64,
        })
    }
}
