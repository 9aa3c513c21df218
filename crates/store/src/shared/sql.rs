//! SQL statements built once for both backends. They differ only in spelling — placeholders,
//! matching and sorting that ignore ASCII case, integer sums, the column that keeps insertion
//! order — which each backend gives by implementing [`SqlDialect`]. Statements come out as an
//! [`SqlQuery`]: the text and its parameters, in placeholder order.

use crate::{SortDirection, StoreResult};
use std::marker::PhantomData;

/// How a backend spells what differs between SQL dialects.
pub(crate) trait SqlDialect {
    /// The column that orders `run_errors` and `run_logs` rows by insertion (ties in time).
    const INSERTION_ORDER: &'static str;

    /// What a `SELECT` ends with to lock the rows it reads until the transaction ends (empty
    /// where one writer connection already serializes writes).
    const LOCK_ROWS: &'static str;

    /// The placeholder of the `n`th parameter, counted from 1.
    fn placeholder(n: usize) -> String;

    /// A condition: `column` matches the `LIKE` pattern `pattern` (a placeholder; `\` escapes),
    /// ignoring the case of ASCII letters only.
    fn like_ignoring_case(column: &str, pattern: &str) -> String;

    /// An `ORDER BY` term on `column` that ignores the case of ASCII letters only and otherwise
    /// compares bytes; NULLs sort first ascending and last descending.
    fn order_ignoring_case(column: &str, direction: SortDirection) -> String;

    /// The length of a text column in UTF-8 bytes (not characters).
    fn byte_length(column: &str) -> String;
}

/// `ASC` or `DESC`.
pub(crate) fn direction_sql(direction: SortDirection) -> &'static str {
    match direction {
        SortDirection::Asc => "ASC",
        SortDirection::Desc => "DESC",
    }
}

/// `SUM(column)` of an integer column, as a 64-bit integer in both dialects.
pub(crate) fn sum_int(column: &str) -> String {
    format!("CAST(SUM({column}) AS BIGINT)")
}

/// One parameter of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlParam {
    Text(String),
    /// A NULL where text would go.
    Null,
    Int(i64),
}

impl From<Option<String>> for SqlParam {
    fn from(value: Option<String>) -> Self {
        value.map_or(SqlParam::Null, SqlParam::Text)
    }
}

/// A statement and its parameters.
#[derive(Debug, Clone)]
pub(crate) struct SqlQuery {
    pub sql: String,
    pub params: Vec<SqlParam>,
}

/// Collects parameters while a statement is written, handing out their placeholders.
pub(crate) struct QueryBuilder<D> {
    params: Vec<SqlParam>,
    dialect: PhantomData<D>,
}

impl<D: SqlDialect> QueryBuilder<D> {
    pub fn new() -> Self {
        QueryBuilder {
            params: Vec::new(),
            dialect: PhantomData,
        }
    }

    /// Adds a parameter; returns its placeholder.
    pub fn bind(&mut self, param: impl Into<SqlParam>) -> String {
        self.params.push(param.into());
        D::placeholder(self.params.len())
    }

    pub fn text(&mut self, value: impl Into<String>) -> String {
        self.bind(SqlParam::Text(value.into()))
    }

    pub fn int(&mut self, value: i64) -> String {
        self.bind(SqlParam::Int(value))
    }

    /// The parameters bound so far (for a statement that uses only those).
    pub fn params(&self) -> &[SqlParam] {
        &self.params
    }

    pub fn finish(self, sql: String) -> SqlQuery {
        SqlQuery {
            sql,
            params: self.params,
        }
    }
}

/// A result row, read by column index: what the shared row readers need from each backend's
/// row type.
pub(crate) trait ResultRow {
    fn text(&self, index: usize) -> StoreResult<String>;
    fn optional_text(&self, index: usize) -> StoreResult<Option<String>>;
    fn int(&self, index: usize) -> StoreResult<i64>;
}
