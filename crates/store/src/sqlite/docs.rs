//! Shared plumbing for tables that hold one JSON document per row plus a few columns copied
//! from it for sorting and filtering. Each resource module describes its table with a
//! [`DocTable`] and calls these helpers, so the SQL for paging, sorting and globbing is written
//! once.

use crate::{Column, ListQuery, Page, SortDirection, StoreError, StoreResult};
use rusqlite::{params_from_iter, types::Value as SqlValue, Connection, OptionalExtension};
use serde_json::Value;

/// A document table: its name, the column naming its parent (application or flow), and the
/// columns copied from document fields.
pub(crate) struct DocTable {
    pub table: &'static str,
    pub parent: Option<(&'static str, &'static str)>,
    /// (column, document field) pairs, besides `id`, the parent and `doc`.
    pub fields: &'static [(&'static str, &'static str)],
    /// Which [`Column`]s exist here, and their SQL names.
    pub columns: &'static [(Column, &'static str)],
}

fn text_field(doc: &Value, field: &str) -> SqlValue {
    match doc.get(field) {
        Some(Value::String(s)) => SqlValue::Text(s.clone()),
        Some(Value::Bool(b)) => SqlValue::Text(b.to_string()),
        Some(Value::Number(n)) => SqlValue::Text(n.to_string()),
        _ => SqlValue::Null,
    }
}

fn id_of(doc: &Value) -> StoreResult<String> {
    doc.get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Backend("document without an id".into()))
}

pub(crate) fn parse_doc(text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(format!("stored document: {e}")))
}

impl DocTable {
    fn column(&self, column: Column) -> StoreResult<&'static str> {
        self.columns
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, name)| *name)
            .ok_or_else(|| {
                StoreError::Backend(format!("{} cannot be sorted by {column:?}", self.table))
            })
    }

    /// The column names and values to write for `doc`.
    fn row(&self, doc: &Value) -> StoreResult<(Vec<&'static str>, Vec<SqlValue>)> {
        let mut names = vec!["id"];
        let mut values = vec![SqlValue::Text(id_of(doc)?)];
        if let Some((column, field)) = self.parent {
            names.push(column);
            values.push(text_field(doc, field));
        }
        for (column, field) in self.fields {
            names.push(column);
            values.push(text_field(doc, field));
        }
        names.push("doc");
        values.push(SqlValue::Text(doc.to_string()));
        Ok((names, values))
    }

    pub fn insert(&self, conn: &Connection, doc: &Value) -> StoreResult<()> {
        let (names, values) = self.row(doc)?;
        let placeholders = vec!["?"; names.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({placeholders})",
            self.table,
            names.join(", ")
        );
        conn.execute(&sql, params_from_iter(values))
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::Conflict(format!("{} already exists", self.table))
                }
                other => other.into(),
            })?;
        Ok(())
    }

    pub fn update(&self, conn: &Connection, doc: &Value) -> StoreResult<bool> {
        let (names, mut values) = self.row(doc)?;
        let id = values.remove(0);
        let sets: Vec<String> = names[1..].iter().map(|n| format!("{n} = ?")).collect();
        let sql = format!("UPDATE {} SET {} WHERE id = ?", self.table, sets.join(", "));
        values.push(id);
        Ok(conn.execute(&sql, params_from_iter(values))? > 0)
    }

    /// A document by id, optionally required to belong to `parent_id`.
    pub fn get(
        &self,
        conn: &Connection,
        parent_id: Option<&str>,
        id: &str,
    ) -> StoreResult<Option<Value>> {
        let (sql, params) = match (self.parent, parent_id) {
            (Some((column, _)), Some(parent)) => (
                format!(
                    "SELECT doc FROM {} WHERE id = ?1 AND {column} = ?2",
                    self.table
                ),
                vec![id.to_owned(), parent.to_owned()],
            ),
            _ => (
                format!("SELECT doc FROM {} WHERE id = ?1", self.table),
                vec![id.to_owned()],
            ),
        };
        let text: Option<String> = conn
            .query_row(&sql, params_from_iter(params), |r| r.get(0))
            .optional()?;
        text.map(|t| parse_doc(&t)).transpose()
    }

    pub fn delete(
        &self,
        conn: &Connection,
        parent_id: Option<&str>,
        id: &str,
    ) -> StoreResult<bool> {
        let changed = match (self.parent, parent_id) {
            (Some((column, _)), Some(parent)) => conn.execute(
                &format!("DELETE FROM {} WHERE id = ?1 AND {column} = ?2", self.table),
                [id, parent],
            )?,
            _ => conn.execute(&format!("DELETE FROM {} WHERE id = ?1", self.table), [id])?,
        };
        Ok(changed > 0)
    }

    /// One page, with `extra` conditions (already-safe SQL with `?` placeholders) ANDed in.
    pub fn list(
        &self,
        conn: &Connection,
        parent_id: Option<&str>,
        query: &ListQuery,
        extra: &[(&str, SqlValue)],
    ) -> StoreResult<Page> {
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<SqlValue> = Vec::new();
        if let (Some((column, _)), Some(parent)) = (self.parent, parent_id) {
            conditions.push(format!("{column} = ?"));
            params.push(SqlValue::Text(parent.to_owned()));
        }
        if let Some((column, glob)) = &query.filter {
            conditions.push(format!("{} LIKE ? ESCAPE '\\'", self.column(*column)?));
            params.push(SqlValue::Text(glob_to_like(glob)));
        }
        for (condition, value) in extra {
            conditions.push((*condition).to_owned());
            params.push(value.clone());
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let total_count: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM {} {where_clause}", self.table),
            params_from_iter(params.iter()),
            |r| r.get(0),
        )?;
        let direction = match query.direction {
            SortDirection::Asc => "ASC",
            SortDirection::Desc => "DESC",
        };
        // Ids are lowercase hex: sorted as they are, so the primary key can serve the order
        // (COLLATE NOCASE made every page of a by-id walk sort the whole table).
        let order = match query.sort {
            Column::Id => format!("id {direction}"),
            other => format!(
                "{} COLLATE NOCASE {direction}, id {direction}",
                self.column(other)?
            ),
        };
        let sql = format!(
            "SELECT doc FROM {} {where_clause} ORDER BY {order} LIMIT ? OFFSET ?",
            self.table
        );
        let limit = query.per_page.min(i64::MAX as u64) as i64;
        let offset = query
            .page
            .saturating_mul(query.per_page)
            .min(i64::MAX as u64) as i64;
        params.push(SqlValue::Integer(limit));
        params.push(SqlValue::Integer(offset));
        let mut statement = conn.prepare(&sql)?;
        let items = statement
            .query_map(params_from_iter(params), |r| r.get::<_, String>(0))?
            .map(|text| parse_doc(&text?))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page {
            items,
            total_count: total_count.max(0) as u64,
        })
    }
}

impl From<StoreError> for rusqlite::Error {
    fn from(e: StoreError) -> Self {
        rusqlite::Error::ToSqlConversionFailure(Box::new(e))
    }
}

/// Losant filters are globs where `*` matches any run of characters; everything else is
/// literal. SQL `LIKE` is case-insensitive for ASCII, which is what users of the filter expect.
pub(crate) fn glob_to_like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len());
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::glob_to_like;

    #[test]
    fn globs_become_like_patterns() {
        assert_eq!(glob_to_like("my*flow"), "my%flow");
        assert_eq!(glob_to_like("100%_done"), "100\\%\\_done");
        assert_eq!(glob_to_like("exact"), "exact");
    }
}
