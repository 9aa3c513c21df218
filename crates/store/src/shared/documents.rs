//! The document tables: one JSON document per row plus a few columns copied from it for
//! sorting and filtering. Each table is described once here as a [`DocTable`], and the SQL for
//! writing, reading, paging, sorting and globbing is built from that description, for either
//! backend's [`SqlDialect`]. The backends only run the statements.

use super::sql::{direction_sql, QueryBuilder, ResultRow, SqlDialect, SqlQuery};
use crate::{Column, ListQuery, ResourceKind, StoreError, StoreResult, TokenRecord};
use serde_json::Value;

/// A document table: its name, the column naming its parent (application or flow), and the
/// columns copied from document fields.
pub(crate) struct DocTable {
    pub table: &'static str,
    /// (column, document field) of the parent's id.
    pub parent: Option<(&'static str, &'static str)>,
    /// (column, document field) pairs, besides `id`, the parent and `doc`.
    pub fields: &'static [(&'static str, &'static str)],
    /// Which [`Column`]s exist here, and their SQL names.
    pub columns: &'static [(Column, &'static str)],
}

pub(crate) const APPLICATIONS: DocTable = DocTable {
    table: "applications",
    parent: None,
    fields: &[
        ("name", "name"),
        ("creation_date", "creationDate"),
        ("last_updated", "lastUpdated"),
    ],
    columns: &[
        (Column::Id, "id"),
        (Column::Name, "name"),
        (Column::CreationDate, "creation_date"),
        (Column::LastUpdated, "last_updated"),
    ],
};

/// API tokens. Losant's `apiToken` document has no `applicationId` (it names its owner with
/// `ownerId`/`ownerType`): the [`TokenRecord`], not the document, says which application a
/// token reaches, so rows are made with [`token_row`].
pub(crate) const TOKENS: DocTable = DocTable {
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

pub(crate) const FLOWS: DocTable = DocTable {
    table: "flows",
    parent: Some(("application_id", "applicationId")),
    fields: &[
        ("name", "name"),
        ("flow_class", "flowClass"),
        ("creation_date", "creationDate"),
        ("last_updated", "lastUpdated"),
    ],
    columns: &[
        (Column::Id, "id"),
        (Column::Name, "name"),
        (Column::CreationDate, "creation_date"),
        (Column::LastUpdated, "last_updated"),
    ],
};

pub(crate) const VERSIONS: DocTable = DocTable {
    table: "flow_versions",
    parent: Some(("flow_id", "flowId")),
    fields: &[
        ("version", "version"),
        ("creation_date", "creationDate"),
        ("last_updated", "lastUpdated"),
    ],
    columns: &[
        (Column::Id, "id"),
        (Column::Version, "version"),
        (Column::Name, "version"),
        (Column::CreationDate, "creation_date"),
        (Column::LastUpdated, "last_updated"),
    ],
};

const INTEGRATIONS: DocTable = DocTable {
    table: "integrations",
    parent: Some(("application_id", "applicationId")),
    fields: &[
        ("name", "name"),
        ("integration_type", "integrationType"),
        ("creation_date", "creationDate"),
        ("last_updated", "lastUpdated"),
    ],
    columns: &[
        (Column::Id, "id"),
        (Column::Name, "name"),
        (Column::Kind, "integration_type"),
        (Column::CreationDate, "creation_date"),
        (Column::LastUpdated, "last_updated"),
    ],
};

const WEBHOOKS: DocTable = DocTable {
    table: "webhooks",
    parent: Some(("application_id", "applicationId")),
    fields: &[
        ("name", "name"),
        ("token", "token"),
        ("creation_date", "creationDate"),
        ("last_updated", "lastUpdated"),
    ],
    columns: &[
        (Column::Id, "id"),
        (Column::Name, "name"),
        (Column::CreationDate, "creation_date"),
        (Column::LastUpdated, "last_updated"),
    ],
};

/// The table holding one kind of application resource.
pub(crate) fn resource_table(kind: ResourceKind) -> &'static DocTable {
    match kind {
        ResourceKind::Integration => &INTEGRATIONS,
        ResourceKind::Webhook => &WEBHOOKS,
    }
}

/// The id of a flow's version named `name`.
pub(crate) fn version_id_by_name_sql<D: SqlDialect>(flow_id: &str, name: &str) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let sql = format!(
        "SELECT id FROM flow_versions WHERE flow_id = {} AND version = {}",
        query.text(flow_id),
        query.text(name)
    );
    query.finish(sql)
}

/// A flow's version by id or by name; an id wins over a version that happens to be named like
/// an id.
pub(crate) fn version_by_id_or_name_sql<D: SqlDialect>(
    flow_id: &str,
    id_or_name: &str,
) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let (flow, wanted) = (query.text(flow_id), query.text(id_or_name));
    let sql = format!(
        "SELECT doc FROM flow_versions WHERE flow_id = {flow} \
         AND (id = {wanted} OR version = {wanted}) ORDER BY (id = {wanted}) DESC LIMIT 1"
    );
    query.finish(sql)
}

/// Tokens: `condition` is given SQL with the placeholders of `query`, which it finishes.
fn tokens_where<D: SqlDialect>(query: QueryBuilder<D>, condition: String) -> SqlQuery {
    query.finish(format!(
        "SELECT id, application_id, token_hash, doc FROM api_tokens WHERE {condition} ORDER BY id"
    ))
}

/// The token with a hash; read with [`token_record`].
pub(crate) fn token_by_hash_sql<D: SqlDialect>(token_hash: &str) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let condition = format!("token_hash = {}", query.text(token_hash));
    tokens_where(query, condition)
}

/// An application's token by id; read with [`token_record`].
pub(crate) fn token_sql<D: SqlDialect>(application_id: &str, id: &str) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let condition = format!(
        "id = {} AND application_id = {}",
        query.text(id),
        query.text(application_id)
    );
    tokens_where(query, condition)
}

/// User-level tokens (no application), by id; read with [`token_record`].
pub(crate) fn user_tokens_sql<D: SqlDialect>() -> SqlQuery {
    tokens_where(QueryBuilder::<D>::new(), "application_id IS NULL".into())
}

pub(crate) fn delete_user_token_sql<D: SqlDialect>(id: &str) -> SqlQuery {
    let mut query = QueryBuilder::<D>::new();
    let sql = format!(
        "DELETE FROM api_tokens WHERE id = {} AND application_id IS NULL",
        query.text(id)
    );
    query.finish(sql)
}

/// A row of the token queries.
pub(crate) fn token_record(row: &impl ResultRow) -> StoreResult<TokenRecord> {
    Ok(TokenRecord {
        id: row.text(0)?,
        application_id: row.optional_text(1)?,
        token_hash: row.text(2)?,
        doc: parse_doc(&row.text(3)?)?,
    })
}

/// The values of a row, in the order of [`DocTable::column_names`].
pub(crate) type RowValues = Vec<Option<String>>;

/// A document field as column text: strings as they are, numbers and booleans spelled out,
/// anything else NULL.
fn text_field(doc: &Value, field: &str) -> Option<String> {
    match doc.get(field) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn id_of(doc: &Value) -> StoreResult<String> {
    doc.get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Backend("document without an id".into()))
}

/// A stored document's text back to JSON.
pub(crate) fn parse_doc(text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(format!("stored document: {e}")))
}

/// Losant filters are globs where `*` matches any run of characters; everything else is
/// literal. As a `LIKE` pattern escaped with `\`; the backends match it ignoring ASCII case,
/// which is what users of the filter expect.
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

/// The row of a token: its document's columns, the record's id and application, and its hash
/// last (the column [`DocTable::insert_sql`] is given as extra for tokens).
pub(crate) fn token_row(token: &TokenRecord) -> StoreResult<RowValues> {
    let mut row = TOKENS.row(&token.doc)?;
    row[0] = Some(token.id.clone());
    row[1] = token.application_id.clone();
    Ok(row)
}

/// One page of a list: the count of the whole filtered collection, and the page itself.
pub(crate) struct ListSql {
    /// `SELECT COUNT(*) …`, with the first [`ListSql::count_params`] parameters of `page`.
    pub count: String,
    pub count_params: usize,
    /// `SELECT doc … LIMIT … OFFSET …`.
    pub page: SqlQuery,
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

    /// `id`, the parent column, the field columns and `doc`: the order of [`DocTable::row`].
    pub fn column_names(&self) -> Vec<&'static str> {
        let mut names = vec!["id"];
        names.extend(self.parent.map(|(column, _)| column));
        names.extend(self.fields.iter().map(|(column, _)| *column));
        names.push("doc");
        names
    }

    /// The values to write for `doc`, in the order of [`DocTable::column_names`].
    pub fn row(&self, doc: &Value) -> StoreResult<RowValues> {
        let mut values = vec![Some(id_of(doc)?)];
        values.extend(self.parent.map(|(_, field)| text_field(doc, field)));
        values.extend(self.fields.iter().map(|(_, field)| text_field(doc, field)));
        values.push(Some(doc.to_string()));
        Ok(values)
    }

    /// Inserts `row` (with the values of `extra_columns` after it).
    pub fn insert_sql<D: SqlDialect>(
        &self,
        row: RowValues,
        extra_columns: &[(&str, String)],
    ) -> SqlQuery {
        let mut query = QueryBuilder::<D>::new();
        let mut names = self.column_names();
        let mut placeholders: Vec<String> = row.into_iter().map(|v| query.bind(v)).collect();
        for (name, value) in extra_columns {
            names.push(name);
            placeholders.push(query.text(value.clone()));
        }
        query.finish(format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.table,
            names.join(", "),
            placeholders.join(", ")
        ))
    }

    /// Replaces every column of the row with `row`'s id by `row`.
    pub fn update_sql<D: SqlDialect>(&self, row: RowValues) -> SqlQuery {
        let mut query = QueryBuilder::<D>::new();
        let mut values = row.into_iter();
        let id = values.next().flatten();
        let sets: Vec<String> = self.column_names()[1..]
            .iter()
            .zip(values)
            .map(|(name, value)| format!("{name} = {}", query.bind(value)))
            .collect();
        let id = query.bind(id);
        query.finish(format!(
            "UPDATE {} SET {} WHERE id = {id}",
            self.table,
            sets.join(", ")
        ))
    }

    /// `SELECT doc` (or `DELETE`) of a row by id, required to belong to `parent_id` if given.
    fn by_id_sql<D: SqlDialect>(&self, verb: &str, parent_id: Option<&str>, id: &str) -> SqlQuery {
        let mut query = QueryBuilder::<D>::new();
        let mut sql = format!("{verb} {} WHERE id = {}", self.table, query.text(id));
        if let (Some((column, _)), Some(parent)) = (self.parent, parent_id) {
            sql.push_str(&format!(" AND {column} = {}", query.text(parent)));
        }
        query.finish(sql)
    }

    /// The document with `id`, optionally required to belong to `parent_id`.
    pub fn get_sql<D: SqlDialect>(&self, parent_id: Option<&str>, id: &str) -> SqlQuery {
        self.by_id_sql::<D>("SELECT doc FROM", parent_id, id)
    }

    pub fn delete_sql<D: SqlDialect>(&self, parent_id: Option<&str>, id: &str) -> SqlQuery {
        self.by_id_sql::<D>("DELETE FROM", parent_id, id)
    }

    /// Every document, or every document of one parent, by id (for work over all of them).
    pub fn all_sql<D: SqlDialect>(&self, parent_id: Option<&str>) -> SqlQuery {
        let mut query = QueryBuilder::<D>::new();
        let mut sql = format!("SELECT doc FROM {}", self.table);
        if let (Some((column, _)), Some(parent)) = (self.parent, parent_id) {
            sql.push_str(&format!(" WHERE {column} = {}", query.text(parent)));
        }
        sql.push_str(" ORDER BY id");
        query.finish(sql)
    }

    /// One page of the parent's documents, with `equal` conditions (column = value) ANDed in.
    pub fn list_sql<D: SqlDialect>(
        &self,
        parent_id: Option<&str>,
        query: &ListQuery,
        equal: &[(&str, String)],
    ) -> StoreResult<ListSql> {
        let mut builder = QueryBuilder::<D>::new();
        let mut conditions: Vec<String> = Vec::new();
        if let (Some((column, _)), Some(parent)) = (self.parent, parent_id) {
            conditions.push(format!("{column} = {}", builder.text(parent)));
        }
        if let Some((column, glob)) = &query.filter {
            let pattern = builder.text(glob_to_like(glob));
            conditions.push(D::like_ignoring_case(self.column(*column)?, &pattern));
        }
        for (column, value) in equal {
            conditions.push(format!("{column} = {}", builder.text(value.clone())));
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let count_params = builder.params().len();
        let count = format!("SELECT COUNT(*) FROM {}{where_clause}", self.table);
        // Ids are lowercase hex: sorted as they are (byte order), so the primary key can serve
        // the order. Other columns ignore ASCII case; equal keys fall back to the id.
        let direction = direction_sql(query.direction);
        let order = match query.sort {
            Column::Id => format!("id {direction}"),
            other => format!(
                "{}, id {direction}",
                D::order_ignoring_case(self.column(other)?, query.direction)
            ),
        };
        let limit = builder.int(query.per_page.min(i64::MAX as u64) as i64);
        let offset = builder.int(
            query
                .page
                .saturating_mul(query.per_page)
                .min(i64::MAX as u64) as i64,
        );
        let page = builder.finish(format!(
            "SELECT doc FROM {}{where_clause} ORDER BY {order} LIMIT {limit} OFFSET {offset}",
            self.table
        ));
        Ok(ListSql {
            count,
            count_params,
            page,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::sql::SqlParam;
    use crate::SortDirection;

    struct Numbered;
    impl SqlDialect for Numbered {
        const INSERTION_ORDER: &'static str = "seq";
        const LOCK_ROWS: &'static str = " FOR UPDATE";
        fn placeholder(n: usize) -> String {
            format!("${n}")
        }
        fn like_ignoring_case(column: &str, pattern: &str) -> String {
            format!("{column} ILIKE {pattern}")
        }
        fn order_ignoring_case(column: &str, direction: SortDirection) -> String {
            format!("lower({column}) {}", direction_sql(direction))
        }
        fn byte_length(column: &str) -> String {
            format!("octet_length({column})")
        }
    }

    fn params_of(row: RowValues) -> Vec<SqlParam> {
        row.into_iter().map(SqlParam::from).collect()
    }

    #[test]
    fn globs_become_like_patterns() {
        assert_eq!(glob_to_like("my*flow"), "my%flow");
        assert_eq!(glob_to_like("100%_done"), "100\\%\\_done");
        assert_eq!(glob_to_like("exact"), "exact");
    }

    #[test]
    fn statements_number_their_parameters_in_order() {
        let doc = serde_json::json!({"id": "f1", "applicationId": "a1", "name": "n",
            "flowClass": "cloud", "creationDate": "c", "lastUpdated": 3});
        let row = FLOWS.row(&doc).unwrap();
        let update = FLOWS.update_sql::<Numbered>(row.clone());
        assert_eq!(
            update.sql,
            "UPDATE flows SET application_id = $1, name = $2, flow_class = $3, \
             creation_date = $4, last_updated = $5, doc = $6 WHERE id = $7"
        );
        let mut expected = params_of(row.clone());
        expected.rotate_left(1);
        assert_eq!(update.params, expected);
        assert_eq!(update.params[4], SqlParam::Text("3".into()));

        let list = FLOWS
            .list_sql::<Numbered>(
                Some("a1"),
                &ListQuery {
                    filter: Some((Column::Name, "x*".into())),
                    ..ListQuery::all()
                },
                &[("flow_class", "edge".into())],
            )
            .unwrap();
        assert_eq!(
            list.count,
            "SELECT COUNT(*) FROM flows WHERE application_id = $1 AND name ILIKE $2 \
             AND flow_class = $3"
        );
        assert_eq!(list.count_params, 3);
        assert!(list
            .page
            .sql
            .ends_with("ORDER BY id ASC LIMIT $4 OFFSET $5"));
    }
}
