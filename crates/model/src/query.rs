//! Losant's "advanced query" for workflows and workflow versions (`GET …/flows?query=…`, the
//! version listing, and the body of `POST …/versions/delete`), evaluated against stored JSON
//! documents. The caller validates the query against `advancedFlowQuery.json`,
//! `advancedFlowVersionQuery.json` or `advancedFlowByVersionQuery.json` first; this module
//! accepts the union of their fields and still answers anything malformed with an error.
//!
//! The whole query is parsed before any document is looked at, so a malformed branch is
//! reported even when another branch would have decided the answer.
//!
//! Semantics, MongoDB-like (Losant runs these on MongoDB through Mongoose):
//!
//! * The keys of a query object are ANDed. `$and`, `$or` and `$nor` take arrays of queries.
//!   As Losant documents for its query builder, an empty list of filters matches every item
//!   for `$and` and `$or`, and none for `$nor` (which is "not `$or`").
//! * A plain value means `$eq`. Several operators in one object must all hold. An object
//!   holding only `$ci` (or nothing) sets no condition.
//! * Query values are cast to the field's type, as Mongoose does (which is why the schemas
//!   accept any scalar for every field): numbers and booleans become text for text fields;
//!   `creationDate`/`lastUpdated` compare as instants, given as ms since the epoch, ISO 8601
//!   (a missing offset means UTC, a bare date means midnight UTC) or a string of digits;
//!   `enabled` accepts `true`/`"true"`/`1`/`"1"`/`"yes"` and their false counterparts; ids
//!   compare without regard to case, as ObjectIds do. A value that cannot be cast equals
//!   nothing, so `$ne` holds and every other comparison fails; it is not an error.
//! * Missing fields are `null`; `null` equals only `null`. Comparisons between different
//!   types fail (MongoDB's type bracketing). `$startsWith`/`$endsWith`/`$contains` apply to
//!   the stored text only (for dates, the ISO string). `$ci: true` folds case for every text
//!   comparison in its object, `$eq`/`$in`/ordering included.
//! * Array fields (`customNodeSupports`): a positive operator holds when any element
//!   satisfies it; `$ne`/`$nin` hold when no element equals. An empty array counts as `null`.
//! * `defaultVersion` compares with the document's `defaultVersionId`; `null` finds flows
//!   whose default is the develop version. Version names are not accepted: the schema only
//!   admits 24-hex ids or `null`, and the stored document keeps only the id.
//! * `triggers` and `nodes` take an element pattern (`{type, key?, config?}` for triggers,
//!   `{type, id?, config?}` for nodes; `id` goes beyond the schema), bare or under `$eq`, or
//!   under `$ne`. An element matches when every given property equals its own and every
//!   given `config` entry equals the element's (a missing entry is `null`; entries not named
//!   are ignored). `$eq` holds when some element matches, `$ne` when none does.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// Why a query could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// Whether `doc` matches the advanced `query`.
pub fn matches(query: &Value, doc: &Value) -> Result<bool, QueryError> {
    Ok(Query::parse(query)?.matches(doc))
}

/// A parsed query, for testing many documents against one query without re-reading it.
#[derive(Debug, Clone)]
pub struct Query(Expr);

impl Query {
    /// Reads a query, refusing unknown fields and operators and ill-typed operands.
    pub fn parse(query: &Value) -> Result<Self, QueryError> {
        parse_query(query, 0).map(Query)
    }

    /// Whether `doc` matches. Never fails: odd documents simply have missing fields.
    pub fn matches(&self, doc: &Value) -> bool {
        self.0.eval(doc)
    }
}

/// serde_json already stops parsing at 128 levels, but a `Value` can be built deeper in code;
/// this keeps recursion bounded either way.
const MAX_DEPTH: usize = 64;

/// How a field's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Id,
    Date,
    Bool,
    /// `triggers`/`nodes`: arrays of objects matched by pattern; the list holds the element
    /// properties a pattern may name besides `config`.
    Graph(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    doc_key: &'static str,
    kind: Kind,
}

const fn field(name: &'static str, doc_key: &'static str, kind: Kind) -> Field {
    Field {
        name,
        doc_key,
        kind,
    }
}

const FIELDS: &[Field] = &[
    field("name", "name", Kind::Text),
    field("id", "id", Kind::Id),
    field("creationDate", "creationDate", Kind::Date),
    field("lastUpdated", "lastUpdated", Kind::Date),
    field("flowClass", "flowClass", Kind::Text),
    field("enabled", "enabled", Kind::Bool),
    field("defaultVersion", "defaultVersionId", Kind::Id),
    field("version", "version", Kind::Text),
    field("flowId", "flowId", Kind::Id),
    field("customNodeSupports", "customNodeSupports", Kind::Text),
    field("triggers", "triggers", Kind::Graph(&["type", "key"])),
    field("nodes", "nodes", Kind::Graph(&["type", "id"])),
];

#[derive(Debug, Clone)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Nor(Vec<Expr>),
    Scalar {
        field: Field,
        ci: bool,
        conds: Vec<Cond>,
    },
    /// Each test is (whether some element must match, the pattern).
    Elements {
        field: Field,
        tests: Vec<(bool, Pattern)>,
    },
}

/// A value cast to its field's type. `Invalid` stands for what could not be cast.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Null,
    Bool(bool),
    Num(f64),
    Text(String),
    Invalid,
}

#[derive(Debug, Clone)]
enum Cond {
    Eq(Operand),
    Ne(Operand),
    Gt(Operand),
    Gte(Operand),
    Lt(Operand),
    Lte(Operand),
    In(Vec<Operand>),
    Nin(Vec<Operand>),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
}

#[derive(Debug, Clone)]
struct Pattern {
    props: Vec<(String, Value)>,
    config: Vec<(String, Value)>,
}

static NULL: Value = Value::Null;

fn fail<T>(message: String) -> Result<T, QueryError> {
    Err(QueryError(message))
}

fn parse_query(query: &Value, depth: usize) -> Result<Expr, QueryError> {
    if depth > MAX_DEPTH {
        return fail(format!("query is nested more than {MAX_DEPTH} levels deep"));
    }
    let Some(object) = query.as_object() else {
        return fail("a query must be a JSON object".to_owned());
    };
    let mut parts = Vec::with_capacity(object.len());
    for (key, value) in object {
        let part = match key.as_str() {
            "$and" => Expr::And(parse_list(key, value, depth)?),
            "$or" => Expr::Or(parse_list(key, value, depth)?),
            "$nor" => Expr::Nor(parse_list(key, value, depth)?),
            other if other.starts_with('$') => {
                return fail(format!("unknown query operator \"{other}\""));
            }
            name => {
                let Some(field) = FIELDS.iter().find(|f| f.name == name) else {
                    return fail(format!("unknown query field \"{name}\""));
                };
                parse_field(*field, value)?
            }
        };
        parts.push(part);
    }
    Ok(match parts.len() {
        1 => parts.remove(0),
        _ => Expr::And(parts),
    })
}

fn parse_list(key: &str, value: &Value, depth: usize) -> Result<Vec<Expr>, QueryError> {
    let Some(items) = value.as_array() else {
        return fail(format!("{key} must be an array of queries"));
    };
    items
        .iter()
        .map(|item| parse_query(item, depth + 1))
        .collect()
}

fn parse_field(field: Field, value: &Value) -> Result<Expr, QueryError> {
    if let Kind::Graph(props) = field.kind {
        return parse_elements(field, props, value);
    }
    match value {
        Value::Object(ops) => parse_operators(field, ops),
        Value::Array(_) => fail(format!(
            "query field \"{}\" takes a value or an object of operators, not an array",
            field.name
        )),
        scalar => Ok(Expr::Scalar {
            field,
            ci: false,
            conds: vec![Cond::Eq(cast(field.kind, scalar, false))],
        }),
    }
}

fn parse_operators(field: Field, ops: &Map<String, Value>) -> Result<Expr, QueryError> {
    let name = field.name;
    // `$ci` changes how every other operand is cast, so it is read first.
    let ci = match ops.get("$ci") {
        None => false,
        Some(Value::Bool(ci)) => *ci,
        Some(_) => return fail(format!("query field \"{name}\": $ci must be true or false")),
    };
    let scalar = |op: &str, operand: &Value| match operand {
        Value::Array(_) | Value::Object(_) => fail(format!(
            "query field \"{name}\": {op} takes a string, number, boolean or null"
        )),
        scalar => Ok(cast(field.kind, scalar, ci)),
    };
    let list = |op: &str, operand: &Value| match operand {
        Value::Array(items) => items.iter().map(|item| scalar(op, item)).collect(),
        _ => fail(format!("query field \"{name}\": {op} takes an array")),
    };
    let needle = |op: &str, operand: &Value| match operand {
        Value::String(s) => Ok(fold(s, ci || field.kind == Kind::Id)),
        _ => fail(format!("query field \"{name}\": {op} takes a string")),
    };
    let mut conds = Vec::with_capacity(ops.len());
    for (op, operand) in ops {
        conds.push(match op.as_str() {
            "$ci" => continue,
            "$eq" => Cond::Eq(scalar(op, operand)?),
            "$ne" => Cond::Ne(scalar(op, operand)?),
            "$gt" => Cond::Gt(scalar(op, operand)?),
            "$gte" => Cond::Gte(scalar(op, operand)?),
            "$lt" => Cond::Lt(scalar(op, operand)?),
            "$lte" => Cond::Lte(scalar(op, operand)?),
            "$in" => Cond::In(list(op, operand)?),
            "$nin" => Cond::Nin(list(op, operand)?),
            "$startsWith" => Cond::StartsWith(needle(op, operand)?),
            "$endsWith" => Cond::EndsWith(needle(op, operand)?),
            "$contains" => Cond::Contains(needle(op, operand)?),
            other => {
                return fail(format!(
                    "query field \"{name}\": unknown operator \"{other}\""
                ))
            }
        });
    }
    Ok(Expr::Scalar { field, ci, conds })
}

fn parse_elements(field: Field, props: &[&str], value: &Value) -> Result<Expr, QueryError> {
    let name = field.name;
    let Some(object) = value.as_object() else {
        return fail(format!("query field \"{name}\" takes an object"));
    };
    let operator_keys = object.keys().filter(|k| k.starts_with('$')).count();
    let tests = if operator_keys == 0 {
        vec![(true, parse_pattern(name, props, value)?)]
    } else if operator_keys == object.len() {
        let mut tests = Vec::with_capacity(object.len());
        for (op, operand) in object {
            let want = match op.as_str() {
                "$eq" => true,
                "$ne" => false,
                other => {
                    return fail(format!(
                        "query field \"{name}\": unknown operator \"{other}\""
                    ))
                }
            };
            tests.push((want, parse_pattern(name, props, operand)?));
        }
        tests
    } else {
        return fail(format!(
            "query field \"{name}\" mixes operators with element properties"
        ));
    };
    Ok(Expr::Elements { field, tests })
}

fn parse_pattern(name: &str, props: &[&str], value: &Value) -> Result<Pattern, QueryError> {
    let Some(object) = value.as_object() else {
        return fail(format!(
            "query field \"{name}\": an element pattern must be an object"
        ));
    };
    let mut pattern = Pattern {
        props: Vec::new(),
        config: Vec::new(),
    };
    for (key, value) in object {
        if key == "config" {
            let Some(config) = value.as_object() else {
                return fail(format!("query field \"{name}\": config must be an object"));
            };
            for (entry, expected) in config {
                if !is_scalar(expected) {
                    return fail(format!(
                        "query field \"{name}\": config.{entry} must be a string, number, boolean or null"
                    ));
                }
                pattern.config.push((entry.clone(), expected.clone()));
            }
        } else if props.contains(&key.as_str()) {
            if !is_scalar(value) {
                return fail(format!(
                    "query field \"{name}\": {key} must be a string, number, boolean or null"
                ));
            }
            pattern.props.push((key.clone(), value.clone()));
        } else {
            return fail(format!(
                "query field \"{name}\": unknown element property \"{key}\""
            ));
        }
    }
    Ok(pattern)
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn fold(text: &str, fold_case: bool) -> String {
    if fold_case {
        text.to_lowercase()
    } else {
        text.to_owned()
    }
}

/// Casts a query operand or a stored value to the field's type; both sides go through here so
/// that they meet on equal terms.
fn cast(kind: Kind, value: &Value, ci: bool) -> Operand {
    match (kind, value) {
        (_, Value::Null) => Operand::Null,
        (Kind::Text, Value::String(s)) => Operand::Text(fold(s, ci)),
        (Kind::Text, Value::Number(n)) => Operand::Text(n.to_string()),
        (Kind::Text, Value::Bool(b)) => Operand::Text(b.to_string()),
        (Kind::Id, Value::String(s)) => Operand::Text(s.to_lowercase()),
        (Kind::Date, Value::Number(n)) => n.as_f64().map_or(Operand::Invalid, Operand::Num),
        (Kind::Date, Value::String(s)) => parse_date(s).map_or(Operand::Invalid, Operand::Num),
        (Kind::Bool, Value::Bool(b)) => Operand::Bool(*b),
        (Kind::Bool, Value::Number(n)) => match n.as_f64() {
            Some(1.0) => Operand::Bool(true),
            Some(0.0) => Operand::Bool(false),
            _ => Operand::Invalid,
        },
        (Kind::Bool, Value::String(s)) => match s.as_str() {
            "true" | "1" | "yes" => Operand::Bool(true),
            "false" | "0" | "no" => Operand::Bool(false),
            _ => Operand::Invalid,
        },
        _ => Operand::Invalid,
    }
}

/// Milliseconds since the epoch, with sub-millisecond precision kept as a fraction.
fn parse_date(text: &str) -> Option<f64> {
    let text = text.trim();
    let epoch_ms = |t: DateTime<Utc>| {
        t.timestamp_millis() as f64 + f64::from(t.timestamp_subsec_micros() % 1000) / 1000.0
    };
    if let Some(t) = crate::time::parse_iso(text) {
        return Some(epoch_ms(t));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(epoch_ms(t.and_utc()));
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return day.and_hms_opt(0, 0, 0).map(|t| epoch_ms(t.and_utc()));
    }
    // Query strings arrive as text, so a stringified epoch is taken at its word.
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    None
}

/// Only like types are ordered; anything else (including `Invalid`) is incomparable.
fn order(stored: &Operand, wanted: &Operand) -> Option<Ordering> {
    match (stored, wanted) {
        (Operand::Null, Operand::Null) => Some(Ordering::Equal),
        (Operand::Bool(a), Operand::Bool(b)) => Some(a.cmp(b)),
        (Operand::Num(a), Operand::Num(b)) => a.partial_cmp(b),
        (Operand::Text(a), Operand::Text(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn equal(stored: &Operand, wanted: &Operand) -> bool {
    order(stored, wanted) == Some(Ordering::Equal)
}

/// The values a scalar condition is tried against: an array's elements, or the value itself.
fn candidates(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(items)) if !items.is_empty() => items.iter().collect(),
        Some(Value::Array(_)) | None => vec![&NULL],
        Some(value) => vec![value],
    }
}

/// Scalar equality for pattern properties: numbers by value (1 equals 1.0), the rest exactly.
fn same_scalar(stored: &Value, wanted: &Value) -> bool {
    match (stored, wanted) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => stored == wanted,
    }
}

impl Pattern {
    fn matches(&self, element: &Value) -> bool {
        let Some(element) = element.as_object() else {
            return false;
        };
        let config = element.get("config");
        self.props
            .iter()
            .all(|(key, wanted)| same_scalar(element.get(key).unwrap_or(&NULL), wanted))
            && self.config.iter().all(|(key, wanted)| {
                let stored = config.and_then(|c| c.get(key)).unwrap_or(&NULL);
                same_scalar(stored, wanted)
            })
    }
}

impl Cond {
    fn holds(&self, kind: Kind, ci: bool, stored: &[&Value]) -> bool {
        let cast_all = || stored.iter().map(|v| cast(kind, v, ci));
        let ordered = |wanted: &Operand, accept: fn(Ordering) -> bool| {
            cast_all().any(|s| order(&s, wanted).is_some_and(accept))
        };
        let text = |test: &dyn Fn(&str) -> bool| {
            stored
                .iter()
                .filter_map(|v| v.as_str())
                .any(|s| test(&fold(s, ci || kind == Kind::Id)))
        };
        match self {
            Cond::Eq(wanted) => cast_all().any(|s| equal(&s, wanted)),
            Cond::Ne(wanted) => !cast_all().any(|s| equal(&s, wanted)),
            Cond::Gt(wanted) => ordered(wanted, Ordering::is_gt),
            Cond::Gte(wanted) => ordered(wanted, Ordering::is_ge),
            Cond::Lt(wanted) => ordered(wanted, Ordering::is_lt),
            Cond::Lte(wanted) => ordered(wanted, Ordering::is_le),
            Cond::In(list) => cast_all().any(|s| list.iter().any(|w| equal(&s, w))),
            Cond::Nin(list) => !cast_all().any(|s| list.iter().any(|w| equal(&s, w))),
            Cond::StartsWith(needle) => text(&|s| s.starts_with(needle.as_str())),
            Cond::EndsWith(needle) => text(&|s| s.ends_with(needle.as_str())),
            Cond::Contains(needle) => text(&|s| s.contains(needle.as_str())),
        }
    }
}

impl Expr {
    fn eval(&self, doc: &Value) -> bool {
        // An empty `$or` matches everything, as Losant documents; `$nor` is its negation.
        let any = |parts: &[Expr]| parts.is_empty() || parts.iter().any(|p| p.eval(doc));
        match self {
            Expr::And(parts) => parts.iter().all(|p| p.eval(doc)),
            Expr::Or(parts) => any(parts),
            Expr::Nor(parts) => !any(parts),
            Expr::Scalar { field, ci, conds } => {
                let stored = candidates(doc.get(field.doc_key));
                conds.iter().all(|c| c.holds(field.kind, *ci, &stored))
            }
            Expr::Elements { field, tests } => {
                let elements: &[Value] = match doc.get(field.doc_key) {
                    Some(Value::Array(items)) => items,
                    Some(single @ Value::Object(_)) => std::slice::from_ref(single),
                    _ => &[],
                };
                tests
                    .iter()
                    .all(|(want, pattern)| elements.iter().any(|e| pattern.matches(e)) == *want)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{validate, SchemaName};
    use serde_json::json;

    const FLOW_ID: &str = "575ec8687ae143cd83dc4a97";
    const VERSION_ID: &str = "675ed18f7ae143cd83dc4bb7";

    fn flow() -> Value {
        json!({
            "id": FLOW_ID,
            "applicationId": "575ec7417ae143cd83dc4a95",
            "name": "Temperature Alerts",
            "creationDate": "2016-06-13T04:00:00.000Z",
            "lastUpdated": "2016-06-13T04:00:00.000Z",
            "flowClass": "cloud",
            "enabled": true,
            "defaultVersionId": VERSION_ID,
            "triggers": [
                {"key": "575ec7417ae143cd83dc4a96", "type": "deviceId",
                 "config": {"attribute": "temp", "limit": 5}, "meta": {}, "outputIds": [["n1"]]},
                {"key": "tick", "type": "timer", "config": {"seconds": 60}}
            ],
            "nodes": [
                {"id": "n1", "type": "ConditionalNode",
                 "config": {"expression": "{{data.temp}} > 20"}, "outputIds": [[], ["n2"]]},
                {"id": "n2", "type": "DebugNode", "config": {"message": "hot"}}
            ]
        })
    }

    fn custom_node() -> Value {
        json!({
            "id": "575ec8687ae143cd83dc4a98",
            "name": "my custom node",
            "creationDate": "2017-01-01T00:00:00.000Z",
            "lastUpdated": "2018-01-01T00:00:00.000Z",
            "flowClass": "customNode",
            "enabled": false,
            "customNodeSupports": ["edge"],
            "triggers": [],
            "nodes": []
        })
    }

    fn version() -> Value {
        json!({
            "id": VERSION_ID,
            "flowId": FLOW_ID,
            "version": "v1.2.0",
            "creationDate": "2016-07-01T12:30:00.250Z",
            "lastUpdated": "2016-07-01T12:30:00.250Z",
            "flowClass": "cloud",
            "enabled": true,
            "triggers": [{"key": "tick", "type": "timer", "config": {"seconds": 60}}],
            "nodes": [{"id": "a", "type": "DebugNode", "config": {"message": "x"}}]
        })
    }

    fn check(query: Value, doc: &Value) -> bool {
        matches(&query, doc).unwrap_or_else(|e| panic!("query {query} failed: {e}"))
    }

    fn refused(query: Value) -> String {
        match Query::parse(&query) {
            Err(QueryError(message)) => message,
            Ok(_) => panic!("query {query} was accepted"),
        }
    }

    #[test]
    fn empty_query_matches_everything() {
        assert!(check(json!({}), &flow()));
        assert!(check(json!({}), &json!(null)));
    }

    #[test]
    fn plain_value_means_eq() {
        let f = flow();
        assert!(check(json!({"name": "Temperature Alerts"}), &f));
        assert!(!check(json!({"name": "temperature alerts"}), &f));
        assert!(check(json!({"flowClass": "cloud", "enabled": true}), &f));
        assert!(!check(json!({"flowClass": "cloud", "enabled": false}), &f));
    }

    #[test]
    fn missing_field_is_null() {
        let f = flow();
        assert!(check(json!({"version": null}), &f));
        assert!(check(json!({"version": {"$eq": null}}), &f));
        assert!(!check(json!({"version": {"$ne": null}}), &f));
        assert!(check(json!({"name": {"$ne": null}}), &f));
        assert!(!check(json!({"name": null}), &f));
        // null is only ordered against null, as in MongoDB.
        assert!(check(json!({"version": {"$gte": null}}), &f));
        assert!(check(json!({"version": {"$lte": null}}), &f));
        assert!(!check(json!({"version": {"$gt": null}}), &f));
        assert!(!check(json!({"name": {"$gte": null}}), &f));
    }

    #[test]
    fn equality_operators() {
        let f = flow();
        assert!(check(json!({"name": {"$eq": "Temperature Alerts"}}), &f));
        assert!(!check(json!({"name": {"$eq": "Other"}}), &f));
        assert!(check(json!({"name": {"$ne": "Other"}}), &f));
        assert!(!check(json!({"name": {"$ne": "Temperature Alerts"}}), &f));
    }

    #[test]
    fn ordering_operators_on_text() {
        let f = flow();
        assert!(check(json!({"name": {"$gt": "Temp"}}), &f));
        assert!(!check(json!({"name": {"$gt": "Temperature Alerts"}}), &f));
        assert!(check(json!({"name": {"$gte": "Temperature Alerts"}}), &f));
        assert!(check(json!({"name": {"$lt": "U"}}), &f));
        assert!(!check(json!({"name": {"$lt": "Temperature Alerts"}}), &f));
        assert!(check(json!({"name": {"$lte": "Temperature Alerts"}}), &f));
        assert!(!check(json!({"name": {"$lte": "A"}}), &f));
        // Byte order: upper case sorts before lower case unless $ci folds it.
        assert!(!check(json!({"name": {"$gt": "a"}}), &f));
        assert!(check(json!({"name": {"$gt": "a", "$ci": true}}), &f));
        // A range is two conditions that must both hold.
        assert!(check(json!({"name": {"$gt": "S", "$lt": "U"}}), &f));
        assert!(!check(json!({"name": {"$gt": "S", "$lt": "T"}}), &f));
    }

    #[test]
    fn in_and_nin() {
        let f = flow();
        assert!(check(json!({"flowClass": {"$in": ["edge", "cloud"]}}), &f));
        assert!(!check(
            json!({"flowClass": {"$in": ["edge", "embedded"]}}),
            &f
        ));
        assert!(!check(json!({"flowClass": {"$in": []}}), &f));
        assert!(check(
            json!({"flowClass": {"$nin": ["edge", "embedded"]}}),
            &f
        ));
        assert!(!check(
            json!({"flowClass": {"$nin": ["edge", "cloud"]}}),
            &f
        ));
        assert!(check(json!({"flowClass": {"$nin": []}}), &f));
        assert!(check(json!({"version": {"$in": [null, "v1"]}}), &f));
    }

    #[test]
    fn string_operators() {
        let f = flow();
        assert!(check(json!({"name": {"$startsWith": "Temp"}}), &f));
        assert!(!check(json!({"name": {"$startsWith": "Alerts"}}), &f));
        assert!(check(json!({"name": {"$endsWith": "Alerts"}}), &f));
        assert!(!check(json!({"name": {"$endsWith": "Temp"}}), &f));
        assert!(check(json!({"name": {"$contains": "ture Al"}}), &f));
        assert!(!check(json!({"name": {"$contains": "xyz"}}), &f));
        // Missing and non-text values have no text to search.
        assert!(!check(json!({"version": {"$contains": "v"}}), &f));
        assert!(!check(json!({"enabled": {"$contains": "t"}}), &f));
    }

    #[test]
    fn case_insensitivity() {
        let f = flow();
        assert!(!check(json!({"name": {"$startsWith": "temp"}}), &f));
        assert!(check(
            json!({"name": {"$startsWith": "temp", "$ci": true}}),
            &f
        ));
        assert!(check(
            json!({"name": {"$endsWith": "ALERTS", "$ci": true}}),
            &f
        ));
        assert!(check(
            json!({"name": {"$contains": "RE AL", "$ci": true}}),
            &f
        ));
        assert!(!check(
            json!({"name": {"$contains": "RE AL", "$ci": false}}),
            &f
        ));
        assert!(check(
            json!({"name": {"$eq": "temperature ALERTS", "$ci": true}}),
            &f
        ));
        assert!(!check(
            json!({"name": {"$ne": "temperature ALERTS", "$ci": true}}),
            &f
        ));
        assert!(check(
            json!({"flowClass": {"$in": ["CLOUD"], "$ci": true}}),
            &f
        ));
        assert!(!check(
            json!({"flowClass": {"$nin": ["CLOUD"], "$ci": true}}),
            &f
        ));
        // $ci alone sets no condition.
        assert!(check(json!({"name": {"$ci": true}}), &f));
        assert!(check(json!({"name": {}}), &f));
    }

    #[test]
    fn values_are_cast_to_text_for_text_fields() {
        let numbered = json!({"name": "42", "flowClass": "true"});
        assert!(check(json!({"name": 42}), &numbered));
        assert!(check(json!({"name": {"$in": [41, 42]}}), &numbered));
        assert!(check(json!({"flowClass": true}), &numbered));
        assert!(!check(json!({"name": 42}), &flow()));
    }

    #[test]
    fn enabled_casts_like_mongoose() {
        let (on, off) = (flow(), custom_node());
        for truthy in [
            json!(true),
            json!("true"),
            json!(1),
            json!("1"),
            json!("yes"),
        ] {
            assert!(check(json!({"enabled": truthy}), &on), "{truthy}");
            assert!(!check(json!({"enabled": truthy}), &off), "{truthy}");
        }
        for falsy in [json!(false), json!("false"), json!(0), json!("no")] {
            assert!(check(json!({"enabled": falsy}), &off), "{falsy}");
        }
        assert!(check(json!({"enabled": {"$ne": false}}), &on));
        assert!(check(json!({"enabled": {"$gt": false}}), &on));
        assert!(!check(json!({"enabled": {"$gt": false}}), &off));
        // Not castable: equals nothing.
        assert!(!check(json!({"enabled": "maybe"}), &on));
        assert!(!check(json!({"enabled": 2}), &on));
        assert!(check(json!({"enabled": {"$ne": "maybe"}}), &on));
    }

    #[test]
    fn dates_compare_as_instants() {
        let f = flow(); // 2016-06-13T04:00:00.000Z = 1465790400000
        assert!(check(json!({"creationDate": 1_465_790_400_000_i64}), &f));
        assert!(check(json!({"creationDate": 1_465_790_400_000.0}), &f));
        assert!(check(
            json!({"creationDate": "2016-06-13T04:00:00.000Z"}),
            &f
        ));
        assert!(check(json!({"creationDate": "2016-06-13T04:00:00Z"}), &f));
        assert!(check(
            json!({"creationDate": "2016-06-13T06:00:00+02:00"}),
            &f
        ));
        assert!(check(json!({"creationDate": "2016-06-13T04:00:00"}), &f));
        assert!(check(json!({"creationDate": "1465790400000"}), &f));
        assert!(!check(json!({"creationDate": 1_465_790_400_001_i64}), &f));
        assert!(check(
            json!({"creationDate": {"$ne": 1_465_790_400_001_i64}}),
            &f
        ));

        assert!(check(
            json!({"creationDate": {"$gt": 1_465_790_399_999_i64}}),
            &f
        ));
        assert!(!check(
            json!({"creationDate": {"$gt": 1_465_790_400_000_i64}}),
            &f
        ));
        assert!(check(
            json!({"creationDate": {"$gte": 1_465_790_400_000_i64}}),
            &f
        ));
        assert!(check(json!({"creationDate": {"$lt": "2016-06-14"}}), &f));
        assert!(check(json!({"creationDate": {"$gte": "2016-06-13"}}), &f));
        assert!(!check(json!({"creationDate": {"$lt": "2016-06-13"}}), &f));
        assert!(check(
            json!({"lastUpdated": {"$lte": "2016-06-13T04:00:00.000Z"}}),
            &f
        ));
        // An offset that shifts the day is still the same instant.
        assert!(check(
            json!({"lastUpdated": {"$lt": "2016-06-12T23:00:01-05:00"}}),
            &f
        ));
        assert!(!check(
            json!({"lastUpdated": {"$lt": "2016-06-12T23:00:00-05:00"}}),
            &f
        ));
        assert!(check(
            json!({"creationDate": {"$in": [0, "2016-06-13T04:00:00.000Z"]}}),
            &f
        ));
        assert!(check(json!({"creationDate": {"$nin": [0, 1]}}), &f));

        // Sub-millisecond parts are kept.
        let v = version(); // 2016-07-01T12:30:00.250Z
        assert!(check(
            json!({"creationDate": {"$gt": "2016-07-01T12:30:00.2499Z"}}),
            &v
        ));
        assert!(check(json!({"creationDate": 1_467_376_200_250_i64}), &v));
    }

    #[test]
    fn odd_date_values() {
        let f = flow();
        // Not a date: equals nothing and orders against nothing.
        assert!(!check(json!({"creationDate": "last week"}), &f));
        assert!(!check(json!({"creationDate": {"$lt": "zzz"}}), &f));
        assert!(check(json!({"creationDate": {"$ne": "last week"}}), &f));
        assert!(!check(json!({"creationDate": true}), &f));
        // String operators read the stored ISO text.
        assert!(check(
            json!({"creationDate": {"$startsWith": "2016-06"}}),
            &f
        ));
        assert!(check(
            json!({"creationDate": {"$endsWith": "z", "$ci": true}}),
            &f
        ));
        // A stored value that is not a date equals nothing, not even null.
        let broken = json!({"creationDate": "garbage"});
        assert!(!check(json!({"creationDate": {"$gt": 0}}), &broken));
        assert!(!check(json!({"creationDate": null}), &broken));
        assert!(check(json!({"creationDate": null}), &json!({})));
    }

    #[test]
    fn ids_ignore_case() {
        let f = flow();
        assert!(check(json!({"id": FLOW_ID}), &f));
        assert!(check(json!({"id": FLOW_ID.to_uppercase()}), &f));
        assert!(check(
            json!({"id": {"$in": ["000000000000000000000000", FLOW_ID.to_uppercase()]}}),
            &f
        ));
        assert!(check(
            json!({"id": {"$gt": "575EC8687AE143CD83DC4A96"}}),
            &f
        ));
        assert!(!check(json!({"id": {"$gt": FLOW_ID}}), &f));
        assert!(check(
            json!({"id": {"$nin": ["575ec8687ae143cd83dc4a98"]}}),
            &f
        ));
        assert!(!check(json!({"id": null}), &f));
    }

    #[test]
    fn default_version_reads_default_version_id() {
        let (f, custom) = (flow(), custom_node());
        assert!(check(json!({"defaultVersion": VERSION_ID}), &f));
        assert!(check(
            json!({"defaultVersion": {"$eq": VERSION_ID.to_uppercase()}}),
            &f
        ));
        assert!(!check(json!({"defaultVersion": VERSION_ID}), &custom));
        // null: the default is the develop version.
        assert!(check(json!({"defaultVersion": null}), &custom));
        assert!(!check(json!({"defaultVersion": null}), &f));
        assert!(check(json!({"defaultVersion": {"$ne": null}}), &f));
        // A version name never matches (and the schema refuses it anyway).
        assert!(!check(json!({"defaultVersion": "v1.2.0"}), &f));
        assert!(validate(
            SchemaName::AdvancedFlowQuery,
            &json!({"defaultVersion": "v1.2.0"})
        )
        .is_err());
    }

    #[test]
    fn version_fields() {
        let v = version();
        assert!(check(json!({"version": "v1.2.0"}), &v));
        assert!(check(
            json!({"version": {"$startsWith": "V1.", "$ci": true}}),
            &v
        ));
        assert!(check(json!({"flowId": FLOW_ID}), &v));
        assert!(check(
            json!({"flowId": {"$in": [FLOW_ID]}, "id": VERSION_ID}),
            &v
        ));
        assert!(!check(json!({"flowId": VERSION_ID}), &v));
    }

    #[test]
    fn array_fields_match_any_element() {
        let (custom, f) = (custom_node(), flow());
        assert!(check(json!({"customNodeSupports": "edge"}), &custom));
        assert!(!check(json!({"customNodeSupports": "cloud"}), &custom));
        assert!(check(
            json!({"customNodeSupports": {"$in": ["cloud", "edge"]}}),
            &custom
        ));
        assert!(!check(
            json!({"customNodeSupports": {"$nin": ["cloud", "edge"]}}),
            &custom
        ));
        assert!(!check(
            json!({"customNodeSupports": {"$ne": "edge"}}),
            &custom
        ));
        assert!(check(
            json!({"customNodeSupports": {"$ne": "cloud"}}),
            &custom
        ));
        assert!(check(
            json!({"customNodeSupports": {"$startsWith": "ED", "$ci": true}}),
            &custom
        ));
        assert!(check(
            json!({"customNodeSupports": {"$gt": "cloud"}}),
            &custom
        ));
        assert!(!check(json!({"customNodeSupports": null}), &custom));
        // Absent or empty counts as null.
        assert!(check(json!({"customNodeSupports": null}), &f));
        assert!(check(
            json!({"customNodeSupports": null}),
            &json!({"customNodeSupports": []})
        ));
        let both = json!({"customNodeSupports": ["cloud", "edge"]});
        assert!(check(
            json!({"customNodeSupports": "cloud", "$and": [{"customNodeSupports": "edge"}]}),
            &both
        ));
        assert!(!check(
            json!({"customNodeSupports": {"$ne": "cloud"}}),
            &both
        ));
    }

    #[test]
    fn trigger_patterns() {
        let f = flow();
        assert!(check(json!({"triggers": {"type": "timer"}}), &f));
        assert!(!check(json!({"triggers": {"type": "webhook"}}), &f));
        assert!(check(
            json!({"triggers": {"type": "timer", "key": "tick"}}),
            &f
        ));
        assert!(!check(
            json!({"triggers": {"type": "timer", "key": "tock"}}),
            &f
        ));
        // The key must belong to the same trigger as the type.
        assert!(!check(
            json!({"triggers": {"type": "deviceId", "key": "tick"}}),
            &f
        ));
        // config: named entries must match; others are ignored; numbers by value.
        assert!(check(
            json!({"triggers": {"type": "deviceId", "config": {"attribute": "temp"}}}),
            &f
        ));
        assert!(check(
            json!({"triggers": {"type": "deviceId", "config": {"limit": 5.0}}}),
            &f
        ));
        assert!(!check(
            json!({"triggers": {"type": "deviceId", "config": {"limit": "5"}}}),
            &f
        ));
        assert!(!check(
            json!({"triggers": {"type": "deviceId", "config": {"seconds": 60}}}),
            &f
        ));
        assert!(check(
            json!({"triggers": {"type": "deviceId", "config": {"missing": null}}}),
            &f
        ));
        assert!(check(
            json!({"triggers": {"type": "timer", "config": {}}}),
            &f
        ));
        // $eq is the bare form; $ne means no trigger matches.
        assert!(check(json!({"triggers": {"$eq": {"type": "timer"}}}), &f));
        assert!(!check(json!({"triggers": {"$ne": {"type": "timer"}}}), &f));
        assert!(check(json!({"triggers": {"$ne": {"type": "webhook"}}}), &f));
        assert!(check(
            json!({"triggers": {"$eq": {"type": "timer"}, "$ne": {"type": "webhook"}}}),
            &f
        ));
        // No triggers at all.
        let custom = custom_node();
        assert!(!check(json!({"triggers": {"type": "timer"}}), &custom));
        assert!(check(
            json!({"triggers": {"$ne": {"type": "timer"}}}),
            &custom
        ));
        assert!(check(
            json!({"triggers": {"$ne": {"type": "timer"}}}),
            &json!({})
        ));
    }

    #[test]
    fn node_patterns() {
        let f = flow();
        assert!(check(json!({"nodes": {"type": "DebugNode"}}), &f));
        assert!(check(
            json!({"nodes": {"type": "DebugNode", "config": {"message": "hot"}}}),
            &f
        ));
        assert!(!check(
            json!({"nodes": {"type": "DebugNode", "config": {"message": "cold"}}}),
            &f
        ));
        assert!(check(
            json!({"nodes": {"type": "ConditionalNode", "id": "n1"}}),
            &f
        ));
        assert!(!check(
            json!({"nodes": {"type": "ConditionalNode", "id": "n2"}}),
            &f
        ));
        assert!(check(json!({"nodes": {"$ne": {"type": "EmailNode"}}}), &f));
        assert!(!check(
            json!({"nodes": {"$ne": {"type": "DebugNode"}}}),
            &version()
        ));
        // Nodes have no key, triggers no id.
        assert!(refused(json!({"nodes": {"type": "DebugNode", "key": "x"}})).contains("\"key\""));
        assert!(refused(json!({"triggers": {"type": "timer", "id": "x"}})).contains("\"id\""));
    }

    #[test]
    fn odd_graph_elements_do_not_match() {
        let odd = json!({"triggers": [1, "timer", null, {"type": "timer", "config": "oops"}],
                         "nodes": {"type": "DebugNode"}});
        assert!(check(json!({"triggers": {"type": "timer"}}), &odd));
        assert!(!check(
            json!({"triggers": {"type": "timer", "config": {"seconds": 60}}}),
            &odd
        ));
        // A lone object stands for a one-element list.
        assert!(check(json!({"nodes": {"type": "DebugNode"}}), &odd));
        assert!(!check(
            json!({"nodes": {"type": "DebugNode"}}),
            &json!({"nodes": "DebugNode"})
        ));
    }

    #[test]
    fn and_or_nor() {
        let (f, custom) = (flow(), custom_node());
        let and = json!({"$and": [{"flowClass": "cloud"}, {"enabled": true}]});
        assert!(check(and.clone(), &f));
        assert!(!check(and, &custom));
        let or = json!({"$or": [{"flowClass": "edge"}, {"name": {"$startsWith": "my"}}]});
        assert!(!check(or.clone(), &f));
        assert!(check(or, &custom));
        let nor = json!({"$nor": [{"flowClass": "edge"}, {"enabled": false}]});
        assert!(check(nor.clone(), &f));
        assert!(!check(nor, &custom));
        // Top-level keys are ANDed, combinators included.
        let mixed = json!({"flowClass": "cloud", "$or": [{"enabled": false}, {"name": {"$contains": "Temp"}}]});
        assert!(check(mixed.clone(), &f));
        assert!(!check(mixed, &custom));
    }

    #[test]
    fn nested_combinators() {
        let (f, custom, v) = (flow(), custom_node(), version());
        let query = json!({
            "$or": [
                {"$and": [
                    {"flowClass": "cloud"},
                    {"$nor": [{"triggers": {"type": "webhook"}}, {"enabled": false}]},
                    {"$or": [{"nodes": {"type": "DebugNode", "config": {"message": "hot"}}},
                             {"version": {"$startsWith": "v2"}}]}
                ]},
                {"customNodeSupports": "edge"}
            ]
        });
        assert!(check(query.clone(), &f));
        assert!(check(query.clone(), &custom));
        assert!(!check(query.clone(), &v));
        assert!(validate(
            SchemaName::AdvancedFlowQuery,
            &json!({"$or": [{"$and": [{"flowClass": "cloud"}]}]})
        )
        .is_ok());
        // Deep but legal nesting.
        let mut deep = json!({"name": "Temperature Alerts"});
        for _ in 0..MAX_DEPTH {
            deep = json!({"$and": [deep]});
        }
        assert!(check(deep.clone(), &f));
        let too_deep = json!({"$or": [deep]});
        assert!(refused(too_deep).contains("nested"));
    }

    #[test]
    fn empty_combinators_follow_losant() {
        let f = flow();
        assert!(check(json!({"$and": []}), &f));
        assert!(check(json!({"$or": []}), &f));
        assert!(!check(json!({"$nor": []}), &f));
    }

    #[test]
    fn malformed_queries_are_errors() {
        assert_eq!(refused(json!(null)), "a query must be a JSON object");
        refused(json!("name"));
        refused(json!([{"name": "x"}]));
        assert!(refused(json!({"owner": "x"})).contains("unknown query field \"owner\""));
        assert!(refused(json!({"$not": [{"name": "x"}]})).contains("\"$not\""));
        assert!(refused(json!({"name": {"$regex": "x"}})).contains("unknown operator \"$regex\""));
        assert!(refused(json!({"name": {"$eq": "x", "foo": 1}})).contains("\"foo\""));
        refused(json!({"name": ["x"]}));
        refused(json!({"name": {"$eq": {"a": 1}}}));
        refused(json!({"name": {"$gt": ["a"]}}));
        assert!(refused(json!({"name": {"$in": "x"}})).contains("$in takes an array"));
        refused(json!({"name": {"$nin": {"a": 1}}}));
        refused(json!({"name": {"$in": [["x"]]}}));
        assert!(refused(json!({"name": {"$startsWith": 5}})).contains("$startsWith takes a string"));
        refused(json!({"name": {"$endsWith": null}}));
        refused(json!({"name": {"$contains": ["a"]}}));
        assert!(refused(json!({"name": {"$ci": "yes"}})).contains("$ci"));
        assert!(refused(json!({"$and": {"name": "x"}})).contains("$and must be an array"));
        refused(json!({"$or": ["name"]}));
        refused(json!({"$nor": [null]}));
        refused(json!({"triggers": "timer"}));
        refused(json!({"triggers": [{"type": "timer"}]}));
        refused(json!({"triggers": {"$gt": {"type": "timer"}}}));
        refused(json!({"triggers": {"$eq": {"type": "timer"}, "type": "timer"}}));
        refused(json!({"triggers": {"$eq": "timer"}}));
        refused(json!({"triggers": {"type": {"$eq": "timer"}}}));
        refused(json!({"nodes": {"type": "DebugNode", "config": "x"}}));
        refused(json!({"nodes": {"type": "DebugNode", "config": {"a": [1]}}}));
    }

    #[test]
    fn errors_surface_even_in_branches_never_reached() {
        let query = json!({"$or": [{"name": {"$startsWith": "Temp"}}, {"name": {"$like": "x"}}]});
        assert!(matches(&query, &flow()).is_err());
        assert!(matches(&query, &json!({})).is_err());
    }

    #[test]
    fn odd_documents_do_not_panic() {
        for doc in [
            json!(null),
            json!([1, 2]),
            json!("flow"),
            json!(7),
            json!({"name": {"a": 1}}),
        ] {
            assert!(!check(json!({"name": "x"}), &doc));
            assert!(check(json!({"name": {"$ne": "x"}}), &doc));
            assert!(!check(json!({"name": {"$contains": "a"}}), &doc));
            assert!(!check(json!({"creationDate": {"$gt": 0}}), &doc));
            assert!(!check(json!({"triggers": {"type": "timer"}}), &doc));
            assert!(!check(json!({"enabled": true}), &doc));
        }
    }

    #[test]
    fn parsed_query_is_reusable() {
        let query = Query::parse(&json!({"flowClass": {"$in": ["cloud", "customNode"]}})).unwrap();
        let docs = [flow(), custom_node(), json!({"flowClass": "edge"})];
        let hits: Vec<bool> = docs.iter().map(|d| query.matches(d)).collect();
        assert_eq!(hits, [true, true, false]);
    }

    #[test]
    fn test_queries_are_schema_valid() {
        // The shapes exercised above are ones the schemas accept, so the semantics are tested
        // on real inputs rather than only on what the evaluator tolerates.
        let flow_queries = [
            json!({"name": {"$startsWith": "temp", "$ci": true}, "enabled": "true"}),
            json!({"creationDate": {"$gte": 1_465_790_400_000_i64, "$lt": "2016-06-14"}}),
            json!({"defaultVersion": null, "id": {"$in": [FLOW_ID]}}),
            json!({"triggers": {"type": "deviceId", "key": "k-1", "config": {"limit": 5}}}),
            json!({"triggers": {"$ne": {"type": "timer"}}}),
            json!({"nodes": {"$eq": {"type": "DebugNode", "config": {"message": "hot"}}}}),
            json!({"customNodeSupports": {"$nin": ["cloud"]}}),
            json!({"$nor": [], "$or": [{"flowClass": "edge"}]}),
        ];
        for q in &flow_queries {
            assert!(validate(SchemaName::AdvancedFlowQuery, q).is_ok(), "{q}");
            matches(q, &flow()).unwrap();
        }
        let version_query = json!({"version": {"$endsWith": ".0"}, "triggers": {"type": "timer"}});
        assert!(validate(SchemaName::AdvancedFlowVersionQuery, &version_query).is_ok());
        assert!(check(version_query, &version()));
    }
}
