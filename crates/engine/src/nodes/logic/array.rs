//! `ArrayNode`: applies `rules` (at most [`MAX_RULES`]) in order to the array at
//! `sourceArrayPath`. Rules that change the array work on one copy, which is written once the
//! rules are done — to `destArrayPath`, or back to `sourceArrayPath` when there is none. Rules
//! that compute something write it to their `outputPath` as they run, so later rules (a
//! filter's `{{payload}}`) see it.
//!
//! | `type` | `inputTemplate` | `indexTemplate` | `outputPath` | changes the array |
//! |---|---|---|---|---|
//! | `compact` | — | — | — | drops falsy items |
//! | `concat` | value (an array) | — | — | appends its items |
//! | `deduplicate` | — | — | — | keeps the first of equal items |
//! | `deduplicateBy` | property | — | req: the deduplicated array | no |
//! | `filter` | expression over `{{value}} {{index}} {{array}} {{payload}}` | — | req: kept items | no |
//! | `flatten` | — | — | — | one level |
//! | `groupBy` | property | — | req: `{key: [items]}` | no |
//! | `indexOf` | value | — | req: index or −1 | no |
//! | `insertAt` | value | req | — | inserts (`splice(i, 0, v)`) |
//! | `keyBy` | property | — | req: `{key: item}` (last wins) | no |
//! | `length` | — | — | req: the length | no |
//! | `lookupAt` | — | req | req: the item | no |
//! | `pop` / `shift` | — | — | opt: the removed item | removes the last / first |
//! | `push` / `unshift` | value | — | — | appends / prepends |
//! | `removeAt` | — | req | opt: the removed item | removes |
//! | `replaceAt` | value | req | opt: the old item | replaces |
//! | `reverse` | — | — | — | reverses |
//! | `slice` | start (opt) | end (opt, excluded) | — | keeps the slice |
//! | `sort` / `sortBy` | — / property | — | req: the sorted array | no |
//! | `sum` | — | — | req: the sum | no |
//!
//! Decisions:
//! * **The source**: an array is used as is. A string is its characters; it stays a string on
//!   the payload, so a changed array is written only to `destArrayPath` (Losant: "it will be
//!   left as a string on the payload"). Anything else — nothing, `null`, a number, an object —
//!   is an empty array, and `[]` is written at `sourceArrayPath` ("if there is not an array at
//!   the given payload path, an empty one will be created at that path").
//! * **Values** (`inputTemplate` of concat, indexOf, insertAt, push, replaceAt, unshift) use the
//!   typed passthrough of a template that is exactly one `{{ref}}`: `{{data.item}}` inserts the
//!   object, the number, the string. Any other template is text, as a Mutate `set` is.
//!   `concat` of text parses it as JSON when it is a JSON array (`[4]`), and otherwise appends
//!   the one value, as JavaScript's `concat` does with a non-array; `indexOf` of text finds a
//!   string equal to it or a number or boolean that prints as it (`"2"` finds `2`). A value
//!   template that renders empty (or `undefined`) halts with `TemplateError`, as a required
//!   template does (FLOW-JSON §7.4); `null` through the passthrough is a value.
//! * **Indexes** render as text and read as JavaScript's `Number`, truncated to an integer;
//!   text that is not a number halts with `ValidationError`, blank halts with
//!   `TemplateError` (required) — except `slice`'s, where blank is the start or the end.
//!   Negative indexes count from the end. Out of bounds: `lookupAt` gives `undefined` and
//!   `removeAt` removes nothing (the output path is then
//!   removed, as a `JSON.stringify` of `undefined` would drop it); `insertAt` clamps like
//!   `splice`; `replaceAt` past the end grows the array with `null`s (JavaScript's holes, at
//!   most [`MAX_GAP`] of them, else `ValidationError`) and before the start changes nothing.
//! * **Equality** (`deduplicate`, `deduplicateBy`, `indexOf` of a value) is JavaScript's
//!   SameValueZero, with objects and arrays compared by content (a payload has no identities).
//! * **Properties** (`deduplicateBy`, `groupBy`, `keyBy`, `sortBy`) are payload paths inside
//!   each item (`status`, `tags.zip.[0]`), not templates; a `{{` is a compile error. Keys of
//!   `groupBy`/`keyBy` print as `String(v)` (`undefined`, `null`, `1,2`).
//! * **Sorting** follows lodash's `orderBy`: JavaScript's `<`/`>` between values, `null` then
//!   `undefined` after everything else (before it when descending), stable. `order` is
//!   `ascending` (the default) or `descending` (`asc`/`desc` accepted).
//! * **`flatten`** flattens one level, as NODES.md and the newer revision say (the older web
//!   page said recursively).
//! * **`sum`** adds numbers and strings that are numbers (`"2.5"`); other items are skipped. An
//!   empty array sums to 0; a non-finite sum is stored as `null`.
//! * A `filter` expression that fails halts with `ExpressionError`. A bare `{{array}}` in it is
//!   the variable, not the template helper of the same name (which would win in Handlebars).
//! * `rules` is required (an empty list is a node that only continues); each rule's required
//!   fields are checked when the flow is saved, naming the rule.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::expression::Expression;
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{optional_path, path, render, template};
use crate::path::PayloadPath;
use crate::template::Template;
use crate::value::{compare, number_to_json, number_to_string, string_to_number, JsValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::HashSet;

/// Most rules an Array node may have.
pub const MAX_RULES: usize = 15;
/// Most `null`s a `replaceAt` past the end may add.
pub const MAX_GAP: usize = 10_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    source_array_path: Option<String>,
    dest_array_path: Option<String>,
    rules: Option<Vec<RuleConfig>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleConfig {
    #[serde(rename = "type")]
    kind: Option<String>,
    input_template: Option<Value>,
    index_template: Option<Value>,
    order: Option<String>,
    output_path: Option<String>,
}

/// A value to add or find: text, or one `{{ref}}` passed through with its type.
struct ValueTemplate(Template);

/// What a value template gave.
enum Rendered {
    Value(Value),
    Text(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    Ascending,
    Descending,
}

enum Op {
    Compact,
    Concat(ValueTemplate),
    Deduplicate,
    DeduplicateBy(PayloadPath),
    Filter(Expression),
    Flatten,
    GroupBy(PayloadPath),
    IndexOf(ValueTemplate),
    InsertAt(ValueTemplate, Template),
    KeyBy(PayloadPath),
    Length,
    LookupAt(Template),
    Pop,
    Push(ValueTemplate),
    RemoveAt(Template),
    ReplaceAt(ValueTemplate, Template),
    Reverse,
    Shift,
    Slice(Option<Template>, Option<Template>),
    Sort(Order),
    SortBy(PayloadPath, Order),
    Sum,
    Unshift(ValueTemplate),
}

struct Rule {
    op: Op,
    output: Option<PayloadPath>,
}

pub struct ArrayOp {
    source: PayloadPath,
    dest: Option<PayloadPath>,
    rules: Vec<Rule>,
}

const TYPES: &str = "compact, concat, deduplicate, deduplicateBy, filter, flatten, groupBy, \
    indexOf, insertAt, keyBy, length, lookupAt, pop, push, removeAt, replaceAt, reverse, shift, \
    slice, sort, sortBy, sum, unshift";

/// A template field's text: a string, or a number written bare.
fn field_text(
    spec: &NodeSpec<'_>,
    field: &str,
    value: Option<&Value>,
) -> Result<Option<String>, CompileError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(spec.error(format!("{field} must be a string, not {other}"))),
    }
}

/// `{{array}}` alone would call the `array` helper (a helper wins over a key of the same name,
/// as in Handlebars); in a filter it means the variable, so it is read as `{{./array}}`.
fn own_variables(text: &str) -> String {
    static BARE: std::sync::OnceLock<fancy_regex::Regex> = std::sync::OnceLock::new();
    BARE.get_or_init(|| {
        fancy_regex::Regex::new(r"\{\{(\{?)(~?)\s*array\s*(~?)\}\}").expect("a valid pattern")
    })
    .replace_all(text, "{{$1$2./array$3}}")
    .into_owned()
}

fn compile_rule(spec: &NodeSpec<'_>, i: usize, rule: &RuleConfig) -> Result<Rule, CompileError> {
    let field = |name: &str| format!("rules[{i}].{name}");
    let kind = match rule.kind.as_deref().map(str::trim) {
        None | Some("") => return Err(spec.error(format!("{} is required", field("type")))),
        Some(kind) => kind,
    };
    let input = field_text(spec, &field("inputTemplate"), rule.input_template.as_ref())?;
    let index = field_text(spec, &field("indexTemplate"), rule.index_template.as_ref())?;
    let required = |text: &Option<String>, name: &str| -> Result<String, CompileError> {
        text.clone()
            .ok_or_else(|| spec.error(format!("{} is required for {kind}", field(name))))
    };
    let value = || -> Result<ValueTemplate, CompileError> {
        let text = required(&input, "inputTemplate")?;
        Ok(ValueTemplate(template(
            spec,
            &field("inputTemplate"),
            &text,
        )?))
    };
    let index_template = || -> Result<Template, CompileError> {
        template(
            spec,
            &field("indexTemplate"),
            &required(&index, "indexTemplate")?,
        )
    };
    let property = || -> Result<PayloadPath, CompileError> {
        path(
            spec,
            &field("inputTemplate"),
            &required(&input, "inputTemplate")?,
        )
    };
    let order = || -> Result<Order, CompileError> {
        match rule.order.as_deref().map(str::trim) {
            None | Some("") => Ok(Order::Ascending),
            Some(o) if o.eq_ignore_ascii_case("ascending") || o.eq_ignore_ascii_case("asc") => {
                Ok(Order::Ascending)
            }
            Some(o) if o.eq_ignore_ascii_case("descending") || o.eq_ignore_ascii_case("desc") => {
                Ok(Order::Descending)
            }
            Some(other) => Err(spec.error(format!(
                "{} must be ascending or descending, not \"{other}\"",
                field("order")
            ))),
        }
    };
    let optional_template = |text: &Option<String>, name: &str| -> Result<_, CompileError> {
        text.as_deref()
            .map(|t| template(spec, &field(name), t))
            .transpose()
    };
    let (op, output) = match kind {
        "compact" => (Op::Compact, None),
        "concat" => (Op::Concat(value()?), None),
        "deduplicate" => (Op::Deduplicate, None),
        "deduplicateBy" => (Op::DeduplicateBy(property()?), Some(true)),
        "filter" => {
            let text = own_variables(&required(&input, "inputTemplate")?);
            let expression = Expression::compile(&text)
                .map_err(|e| spec.error(format!("{}: {e}", field("inputTemplate"))))?;
            (Op::Filter(expression), Some(true))
        }
        "flatten" => (Op::Flatten, None),
        "groupBy" => (Op::GroupBy(property()?), Some(true)),
        "indexOf" => (Op::IndexOf(value()?), Some(true)),
        "insertAt" => (Op::InsertAt(value()?, index_template()?), None),
        "keyBy" => (Op::KeyBy(property()?), Some(true)),
        "length" => (Op::Length, Some(true)),
        "lookupAt" => (Op::LookupAt(index_template()?), Some(true)),
        "pop" => (Op::Pop, Some(false)),
        "push" => (Op::Push(value()?), None),
        "removeAt" => (Op::RemoveAt(index_template()?), Some(false)),
        "replaceAt" => (Op::ReplaceAt(value()?, index_template()?), Some(false)),
        "reverse" => (Op::Reverse, None),
        "shift" => (Op::Shift, Some(false)),
        "slice" => (
            Op::Slice(
                optional_template(&input, "inputTemplate")?,
                optional_template(&index, "indexTemplate")?,
            ),
            None,
        ),
        "sort" => (Op::Sort(order()?), Some(true)),
        "sortBy" => (Op::SortBy(property()?, order()?), Some(true)),
        "sum" => (Op::Sum, Some(true)),
        "unshift" => (Op::Unshift(value()?), None),
        other => {
            return Err(spec.error(format!(
                "{} must be one of {TYPES}, not \"{other}\"",
                field("type")
            )))
        }
    };
    // `Some(true)`: an output path is required; `Some(false)`: optional; `None`: unused.
    let output = match output {
        None => None,
        Some(needed) => {
            let path = optional_path(spec, &field("outputPath"), rule.output_path.as_deref())?;
            if needed && path.is_none() {
                return Err(spec.error(format!("{} is required for {kind}", field("outputPath"))));
            }
            path
        }
    };
    Ok(Rule { op, output })
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let source = match config.source_array_path.as_deref() {
        Some(text) if !text.trim().is_empty() => path(spec, "sourceArrayPath", text)?,
        _ => return Err(spec.error("sourceArrayPath is required")),
    };
    let Some(configs) = config.rules else {
        return Err(spec.error("rules is required"));
    };
    if configs.len() > MAX_RULES {
        return Err(spec.error(format!(
            "has {} rules; an Array node may have at most {MAX_RULES}",
            configs.len()
        )));
    }
    let rules = configs
        .iter()
        .enumerate()
        .map(|(i, rule)| compile_rule(spec, i, rule))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CompiledNodeType::new(
        ArrayOp {
            source,
            dest: optional_path(spec, "destArrayPath", config.dest_array_path.as_deref())?,
            rules,
        },
        1,
    ))
}

fn invalid(message: String) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

impl ValueTemplate {
    fn render(&self, i: usize, payload: &Value) -> Result<Rendered, NodeError> {
        let empty = || {
            NodeError::new(
                ErrorName::TemplateError,
                format!(
                    "rules[{i}].inputTemplate rendered empty (template \"{}\")",
                    self.0.source()
                ),
            )
        };
        match self.0.render_value(payload) {
            Ok(JsValue::Undefined) => Err(empty()),
            Ok(JsValue::String(text)) if text.is_empty() => Err(empty()),
            Ok(JsValue::String(text)) => Ok(Rendered::Text(text)),
            Ok(value) => Ok(Rendered::Value(value.to_json().unwrap_or(Value::Null))),
            Err(e) => Err(NodeError::new(ErrorName::TemplateError, e.to_string())),
        }
    }

    /// The value to put into the array.
    fn value(&self, i: usize, payload: &Value) -> Result<Value, NodeError> {
        Ok(match self.render(i, payload)? {
            Rendered::Value(v) => v,
            Rendered::Text(t) => Value::String(t),
        })
    }
}

/// Renders an index template as an integer; `None` when it renders blank.
fn optional_index(t: &Template, field: &str, payload: &Value) -> Result<Option<i64>, NodeError> {
    let text = render(t, payload)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let n = string_to_number(&text);
    if n.is_nan() {
        return Err(invalid(format!("{field} \"{text}\" is not a number")));
    }
    Ok(Some(
        n.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64
    ))
}

/// Renders a required index template as an integer; blank halts with `TemplateError`.
fn index_value(t: &Template, field: &str, payload: &Value) -> Result<i64, NodeError> {
    optional_index(t, field, payload)?.ok_or_else(|| {
        NodeError::new(
            ErrorName::TemplateError,
            format!("{field} rendered empty (template \"{}\")", t.source()),
        )
    })
}

/// An index counted from the end when negative; `None` when still before the start.
fn from_end(index: i64, len: usize) -> Option<usize> {
    if index < 0 {
        usize::try_from(len as i64 + index).ok()
    } else {
        Some(index as usize)
    }
}

/// JavaScript's relative index (`slice`, `splice`): clamped into `0..=len`.
fn relative(index: i64, len: usize) -> usize {
    if index < 0 {
        (len as i64 + index).max(0) as usize
    } else {
        (index as usize).min(len)
    }
}

/// A key under which SameValueZero-equal values (content-equal for objects) coincide.
fn same_value_key(value: Option<&Value>) -> String {
    match value {
        None => "u".into(),
        Some(Value::Number(n)) => format!("n{}", number_to_string(n.as_f64().unwrap_or(f64::NAN))),
        Some(other) => format!("j{other}"),
    }
}

fn same_value_zero(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// How an object key prints: `String(v)`.
fn key_text(value: Option<&Value>) -> String {
    JsValue::from(value).to_js_string()
}

fn property<'a>(item: &'a Value, prop: &PayloadPath) -> Option<std::borrow::Cow<'a, Value>> {
    prop.get(item)
}

/// lodash's `compareAscending`, with `undefined` as `None`.
fn compare_ascending(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let (x, y) = (JsValue::from(a), JsValue::from(b));
    if crate::value::strict_equals(&x, &y) {
        return Ordering::Equal;
    }
    let (a_null, b_null) = (
        matches!(a, Some(Value::Null)),
        matches!(b, Some(Value::Null)),
    );
    let order = compare(&x, &y);
    if (!b_null && order == Some(Ordering::Greater)) || (a_null && b.is_some()) || a.is_none() {
        return Ordering::Greater;
    }
    if (!a_null && order == Some(Ordering::Less)) || (b_null && a.is_some()) || b.is_none() {
        return Ordering::Less;
    }
    Ordering::Equal
}

/// A stable merge sort that never panics, whatever the comparison does (JavaScript's
/// comparisons between mixed types are not a total order).
fn merge_sort<F: FnMut(usize, usize) -> Ordering>(indices: &mut [usize], cmp: &mut F) {
    if indices.len() <= 1 {
        return;
    }
    let mid = indices.len() / 2;
    merge_sort(&mut indices[..mid], cmp);
    merge_sort(&mut indices[mid..], cmp);
    let mut merged = Vec::with_capacity(indices.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < indices.len() {
        if cmp(indices[j], indices[i]) == Ordering::Less {
            merged.push(indices[j]);
            j += 1;
        } else {
            merged.push(indices[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&indices[i..mid]);
    merged.extend_from_slice(&indices[j..]);
    indices.copy_from_slice(&merged);
}

fn sorted(items: &[Value], prop: Option<&PayloadPath>, order: Order) -> Vec<Value> {
    let keys: Vec<Option<std::borrow::Cow<'_, Value>>> = items
        .iter()
        .map(|item| match prop {
            Some(prop) => property(item, prop),
            None => Some(std::borrow::Cow::Borrowed(item)),
        })
        .collect();
    let mut indices: Vec<usize> = (0..items.len()).collect();
    merge_sort(&mut indices, &mut |a, b| {
        let o = compare_ascending(keys[a].as_deref(), keys[b].as_deref());
        if order == Order::Descending {
            o.reverse()
        } else {
            o
        }
    });
    indices.into_iter().map(|i| items[i].clone()).collect()
}

/// Writes `value` at `path`, or removes the path for `undefined`.
fn put(payload: &mut Value, path: &PayloadPath, value: Option<Value>) {
    match value {
        Some(value) => path.set(payload, value),
        None => {
            path.remove(payload);
        }
    }
}

impl ArrayOp {
    /// Runs one rule over `items`; `true` when it changed the array.
    fn apply(
        &self,
        i: usize,
        rule: &Rule,
        items: &mut Vec<Value>,
        payload: &mut Value,
    ) -> Result<bool, NodeError> {
        let field = |name: &str| format!("rules[{i}].{name}");
        let output = |payload: &mut Value, value: Option<Value>| {
            if let Some(path) = &rule.output {
                put(payload, path, value);
            }
        };
        match &rule.op {
            Op::Compact => items.retain(|v| JsValue::from(v).truthy()),
            Op::Concat(t) => match t.render(i, payload)? {
                Rendered::Value(Value::Array(more)) => items.extend(more),
                Rendered::Value(other) => items.push(other),
                Rendered::Text(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Array(more)) => items.extend(more),
                    _ => items.push(Value::String(text)),
                },
            },
            Op::Deduplicate => {
                let mut seen = HashSet::new();
                items.retain(|v| seen.insert(same_value_key(Some(v))));
            }
            Op::DeduplicateBy(prop) => {
                let mut seen = HashSet::new();
                let kept: Vec<Value> = items
                    .iter()
                    .filter(|v| seen.insert(same_value_key(property(v, prop).as_deref())))
                    .cloned()
                    .collect();
                output(payload, Some(Value::Array(kept)));
                return Ok(false);
            }
            Op::Filter(expression) => {
                let mut scope = Map::new();
                scope.insert("value".into(), Value::Null);
                scope.insert("index".into(), Value::from(0));
                scope.insert("array".into(), Value::Array(items.clone()));
                scope.insert("payload".into(), payload.clone());
                let mut scope = Value::Object(scope);
                let mut kept = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    scope["value"] = item.clone();
                    scope["index"] = Value::from(index);
                    let keep = expression.evaluate_truthy(&scope).map_err(|e| {
                        NodeError::new(
                            ErrorName::ExpressionError,
                            format!(
                                "{} \"{}\": {e}",
                                field("inputTemplate"),
                                expression.source()
                            ),
                        )
                    })?;
                    if keep {
                        kept.push(item.clone());
                    }
                }
                output(payload, Some(Value::Array(kept)));
                return Ok(false);
            }
            Op::Flatten => {
                let flat = std::mem::take(items)
                    .into_iter()
                    .flat_map(|v| match v {
                        Value::Array(inner) => inner,
                        other => vec![other],
                    })
                    .collect();
                *items = flat;
            }
            Op::GroupBy(prop) => {
                let mut groups = Map::new();
                for item in items.iter() {
                    let key = key_text(property(item, prop).as_deref());
                    match groups
                        .entry(key)
                        .or_insert_with(|| Value::Array(Vec::new()))
                    {
                        Value::Array(group) => group.push(item.clone()),
                        _ => unreachable!("groups hold arrays"),
                    }
                }
                output(payload, Some(Value::Object(groups)));
                return Ok(false);
            }
            Op::IndexOf(t) => {
                let found = match t.render(i, payload)? {
                    Rendered::Value(needle) => {
                        items.iter().position(|v| same_value_zero(v, &needle))
                    }
                    Rendered::Text(text) => items.iter().position(|v| match v {
                        Value::String(s) => *s == text,
                        Value::Number(_) | Value::Bool(_) => {
                            JsValue::from(v).to_js_string() == text
                        }
                        _ => false,
                    }),
                };
                output(payload, Some(Value::from(found.map_or(-1, |n| n as i64))));
                return Ok(false);
            }
            Op::InsertAt(t, index) => {
                let value = t.value(i, payload)?;
                let at = relative(
                    index_value(index, &field("indexTemplate"), payload)?,
                    items.len(),
                );
                items.insert(at, value);
            }
            Op::KeyBy(prop) => {
                let mut keyed = Map::new();
                for item in items.iter() {
                    keyed.insert(key_text(property(item, prop).as_deref()), item.clone());
                }
                output(payload, Some(Value::Object(keyed)));
                return Ok(false);
            }
            Op::Length => {
                output(payload, Some(Value::from(items.len())));
                return Ok(false);
            }
            Op::LookupAt(index) => {
                let at = index_value(index, &field("indexTemplate"), payload)?;
                let item = from_end(at, items.len())
                    .and_then(|n| items.get(n))
                    .cloned();
                output(payload, item);
                return Ok(false);
            }
            Op::Pop => {
                let item = items.pop();
                output(payload, item);
            }
            Op::Shift => {
                let item = (!items.is_empty()).then(|| items.remove(0));
                output(payload, item);
            }
            Op::Push(t) => items.push(t.value(i, payload)?),
            Op::Unshift(t) => items.insert(0, t.value(i, payload)?),
            Op::RemoveAt(index) => {
                let at = index_value(index, &field("indexTemplate"), payload)?;
                let removed = match from_end(at, items.len()) {
                    Some(n) if n < items.len() => Some(items.remove(n)),
                    _ => None,
                };
                output(payload, removed);
            }
            Op::ReplaceAt(t, index) => {
                let value = t.value(i, payload)?;
                let at = index_value(index, &field("indexTemplate"), payload)?;
                let old = match from_end(at, items.len()) {
                    Some(n) if n < items.len() => Some(std::mem::replace(&mut items[n], value)),
                    Some(n) => {
                        if n - items.len() > MAX_GAP {
                            return Err(invalid(format!(
                                "{} {at} is more than {MAX_GAP} past the end of the array",
                                field("indexTemplate")
                            )));
                        }
                        items.resize(n, Value::Null);
                        items.push(value);
                        None
                    }
                    None => None,
                };
                output(payload, old);
            }
            Op::Reverse => items.reverse(),
            Op::Slice(start, end) => {
                let len = items.len();
                let bound = |t: &Option<Template>, name: &str| match t {
                    Some(t) => optional_index(t, &field(name), payload),
                    None => Ok(None),
                };
                let start = bound(start, "inputTemplate")?.map_or(0, |n| relative(n, len));
                let end = bound(end, "indexTemplate")?.map_or(len, |n| relative(n, len));
                *items = if start < end {
                    items[start..end].to_vec()
                } else {
                    Vec::new()
                };
            }
            Op::Sort(order) => {
                output(payload, Some(Value::Array(sorted(items, None, *order))));
                return Ok(false);
            }
            Op::SortBy(prop, order) => {
                output(
                    payload,
                    Some(Value::Array(sorted(items, Some(prop), *order))),
                );
                return Ok(false);
            }
            Op::Sum => {
                let total: f64 = items
                    .iter()
                    .filter_map(|v| match v {
                        Value::Number(n) => n.as_f64(),
                        Value::String(s) if !s.trim().is_empty() => {
                            Some(string_to_number(s)).filter(|n| n.is_finite())
                        }
                        _ => None,
                    })
                    .sum();
                output(payload, Some(number_to_json(total).unwrap_or(Value::Null)));
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Node for ArrayOp {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let (mut items, is_string) = match self.source.get(payload).as_deref() {
            Some(Value::Array(items)) => (items.clone(), false),
            Some(Value::String(text)) => (
                text.chars().map(|c| Value::String(c.to_string())).collect(),
                true,
            ),
            _ => {
                self.source.set(payload, Value::Array(Vec::new()));
                (Vec::new(), false)
            }
        };
        let mut changed = false;
        for (i, rule) in self.rules.iter().enumerate() {
            changed |= self.apply(i, rule, &mut items, payload)?;
        }
        if changed {
            match (&self.dest, is_string) {
                (Some(dest), _) => dest.set(payload, Value::Array(items)),
                (None, false) => self.source.set(payload, Value::Array(items)),
                (None, true) => {}
            }
        }
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn run(rules: Value, payload: Value) -> Value {
        let config = json!({"sourceArrayPath": "data.list", "rules": rules});
        let (port, payload) = run_node("ArrayNode", &config, payload).unwrap();
        assert_eq!(port, 0);
        payload
    }

    /// Runs one rule over `list`; returns (the array after, `working.out`).
    fn one(rule: Value, list: Value) -> (Value, Value) {
        let after = run(
            json!([rule]),
            json!({"data": {"list": list, "x": {"k": 1}, "n": 2}}),
        );
        (
            after["data"]["list"].clone(),
            after["working"]["out"].clone(),
        )
    }

    fn fails(rule: Value, list: Value) -> crate::error::NodeError {
        let config = json!({"sourceArrayPath": "data.list", "rules": [rule]});
        run_node("ArrayNode", &config, json!({"data": {"list": list}})).unwrap_err()
    }

    #[test]
    fn compact_flatten_reverse_deduplicate() {
        let (list, _) = one(
            json!({"type": "compact"}),
            json!([0, 1, false, 2, "", 3, null, [], {}]),
        );
        assert_eq!(list, json!([1, 2, 3, [], {}]));
        let (list, _) = one(json!({"type": "flatten"}), json!([1, [2, [3], 4], [5], []]));
        assert_eq!(list, json!([1, 2, [3], 4, 5]));
        let (list, _) = one(json!({"type": "reverse"}), json!([1, "a", null]));
        assert_eq!(list, json!([null, "a", 1]));
        let (list, _) = one(
            json!({"type": "deduplicate"}),
            json!([0, 1, 2, 2, "2", 1.0, {"a": 1}, {"a": 1}, [1], null, null]),
        );
        assert_eq!(list, json!([0, 1, 2, "2", {"a": 1}, [1], null]));
    }

    #[test]
    fn adding_values() {
        let (list, _) = one(
            json!({"type": "push", "inputTemplate": "{{data.x}}"}),
            json!([1]),
        );
        assert_eq!(list, json!([1, {"k": 1}]));
        let (list, _) = one(json!({"type": "push", "inputTemplate": "42"}), json!([1]));
        assert_eq!(list, json!([1, "42"]));
        let (list, _) = one(
            json!({"type": "unshift", "inputTemplate": "{{data.n}}"}),
            json!([1]),
        );
        assert_eq!(list, json!([2, 1]));
        let (list, _) = one(
            json!({"type": "concat", "inputTemplate": "[4, 5]"}),
            json!([1]),
        );
        assert_eq!(list, json!([1, 4, 5]));
        let (list, _) = one(
            json!({"type": "concat", "inputTemplate": "{{data.x}}"}),
            json!([1]),
        );
        assert_eq!(list, json!([1, {"k": 1}]));
        let (list, _) = one(
            json!({"type": "concat", "inputTemplate": "x{{data.n}}"}),
            json!([1]),
        );
        assert_eq!(list, json!([1, "x2"]));
        for (index, expected) in [
            ("1", json!([1, "v", 2, 3])),
            ("-1", json!([1, 2, "v", 3])),
            ("99", json!([1, 2, 3, "v"])),
            ("-99", json!(["v", 1, 2, 3])),
            ("{{data.n}}", json!([1, 2, "v", 3])),
            ("1.7", json!([1, "v", 2, 3])),
        ] {
            let (list, _) = one(
                json!({"type": "insertAt", "inputTemplate": "v", "indexTemplate": index}),
                json!([1, 2, 3]),
            );
            assert_eq!(list, expected, "{index}");
        }
    }

    #[test]
    fn removing_values() {
        let (list, out) = one(
            json!({"type": "pop", "outputPath": "working.out"}),
            json!([1, 2]),
        );
        assert_eq!((list, out), (json!([1]), json!(2)));
        let (list, out) = one(
            json!({"type": "shift", "outputPath": "working.out"}),
            json!([1, 2]),
        );
        assert_eq!((list, out), (json!([2]), json!(1)));
        let (list, out) = one(
            json!({"type": "pop", "outputPath": "working.out"}),
            json!([]),
        );
        assert_eq!((list, out), (json!([]), Value::Null));
        let (list, _) = one(json!({"type": "shift"}), json!([]));
        assert_eq!(list, json!([]));
        let rule =
            |i: &str| json!({"type": "removeAt", "indexTemplate": i, "outputPath": "working.out"});
        assert_eq!(one(rule("1"), json!([1, 2, 3])), (json!([1, 3]), json!(2)));
        assert_eq!(one(rule("-1"), json!([1, 2, 3])), (json!([1, 2]), json!(3)));
        assert_eq!(
            one(rule("3"), json!([1, 2, 3])),
            (json!([1, 2, 3]), Value::Null)
        );
        assert_eq!(
            one(rule("-4"), json!([1, 2, 3])),
            (json!([1, 2, 3]), Value::Null)
        );
    }

    #[test]
    fn replace_and_lookup() {
        let rule = |i: &str| {
            json!({"type": "replaceAt", "inputTemplate": "{{data.n}}", "indexTemplate": i,
                "outputPath": "working.out"})
        };
        assert_eq!(one(rule("0"), json!([1, 5])), (json!([2, 5]), json!(1)));
        assert_eq!(one(rule("-1"), json!([1, 5])), (json!([1, 2]), json!(5)));
        assert_eq!(
            one(rule("3"), json!([1])),
            (json!([1, null, null, 2]), Value::Null)
        );
        assert_eq!(one(rule("-3"), json!([1])), (json!([1]), Value::Null));
        let far = json!({"type": "replaceAt", "inputTemplate": "x", "indexTemplate": "20000"});
        assert_eq!(fails(far, json!([])).name, ErrorName::ValidationError);
        let look =
            |i: &str| json!({"type": "lookupAt", "indexTemplate": i, "outputPath": "working.out"});
        assert_eq!(one(look("1"), json!(["a", "b"])).1, json!("b"));
        assert_eq!(one(look("-2"), json!(["a", "b"])).1, json!("a"));
        assert_eq!(one(look("2"), json!(["a", "b"])).1, Value::Null);
        // An out-of-range lookup leaves the output undefined (removed).
        let after = run(
            json!([look("5")]),
            json!({"data": {"list": [1]}, "working": {"out": "old"}}),
        );
        assert!(after["working"].get("out").is_none());
    }

    #[test]
    fn slice() {
        let rule = |start: Value, end: Value| json!({"type": "slice", "inputTemplate": start, "indexTemplate": end});
        let list = json!([0, 1, 2, 3, 4]);
        // A start or end that renders blank is the default.
        assert_eq!(
            one(
                rule(json!("{{data.none}}"), json!("{{data.n}}")),
                list.clone()
            )
            .0,
            json!([0, 1])
        );
        assert_eq!(
            one(rule(json!("1"), json!("4")), list.clone()).0,
            json!([1, 2, 3])
        );
        assert_eq!(
            one(rule(json!("2"), json!("")), list.clone()).0,
            json!([2, 3, 4])
        );
        assert_eq!(
            one(rule(json!(""), json!("-2")), list.clone()).0,
            json!([0, 1, 2])
        );
        assert_eq!(
            one(rule(json!(-2), Value::Null), list.clone()).0,
            json!([3, 4])
        );
        assert_eq!(one(rule(json!("4"), json!("1")), list).0, json!([]));
    }

    #[test]
    fn computed_outputs() {
        let out = |rule: Value, list: Value| one(rule, list).1;
        let list = json!([{"id": "a", "s": "ok", "v": 3}, {"id": "b", "s": "bad", "v": 9},
            {"id": "c", "s": "ok", "v": 1}, {"id": "d", "v": 2}]);
        assert_eq!(
            out(
                json!({"type": "length", "outputPath": "working.out"}),
                list.clone()
            ),
            json!(4)
        );
        assert_eq!(
            out(
                json!({"type": "groupBy", "inputTemplate": "s", "outputPath": "working.out"}),
                list.clone()
            ),
            json!({"ok": [list[0], list[2]], "bad": [list[1]], "undefined": [list[3]]})
        );
        assert_eq!(
            out(
                json!({"type": "keyBy", "inputTemplate": "s", "outputPath": "working.out"}),
                list.clone()
            ),
            json!({"ok": list[2], "bad": list[1], "undefined": list[3]})
        );
        assert_eq!(
            out(
                json!({"type": "deduplicateBy", "inputTemplate": "s", "outputPath": "working.out"}),
                list.clone()
            ),
            json!([list[0], list[1], list[3]])
        );
        assert_eq!(
            out(
                json!({"type": "sortBy", "inputTemplate": "v", "order": "descending", "outputPath": "working.out"}),
                list.clone()
            ),
            json!([list[1], list[0], list[3], list[2]])
        );
        assert_eq!(
            out(
                json!({"type": "sortBy", "inputTemplate": "s", "outputPath": "working.out"}),
                list.clone()
            ),
            json!([list[1], list[0], list[2], list[3]])
        );
        assert_eq!(
            out(
                json!({"type": "sum", "outputPath": "working.out"}),
                json!([1, 2.5, "3", "x", null, true, ""])
            ),
            json!(6.5)
        );
        assert_eq!(
            out(
                json!({"type": "sum", "outputPath": "working.out"}),
                json!([])
            ),
            json!(0)
        );
        // The source is not changed by computing rules.
        let (after, _) = one(
            json!({"type": "sort", "outputPath": "working.out"}),
            json!([3, 1, 2]),
        );
        assert_eq!(after, json!([3, 1, 2]));
    }

    #[test]
    fn sort_follows_lodash() {
        let sort = |list: Value, order: &str| {
            one(
                json!({"type": "sort", "order": order, "outputPath": "working.out"}),
                list,
            )
            .1
        };
        assert_eq!(
            sort(json!([10, 9, 1, 100]), "ascending"),
            json!([1, 9, 10, 100])
        );
        assert_eq!(
            sort(json!(["b", "B", "a", "aa"]), "asc"),
            json!(["B", "a", "aa", "b"])
        );
        assert_eq!(
            sort(json!([2, null, 1, 3]), "ascending"),
            json!([1, 2, 3, null])
        );
        assert_eq!(
            sort(json!([2, null, 1, 3]), "descending"),
            json!([null, 3, 2, 1])
        );
        // Mixed types do not panic.
        let mixed = sort(
            json!(["10", 9, "a", {"x": 1}, [2], null, true, "9"]),
            "ascending",
        );
        assert_eq!(mixed.as_array().unwrap().len(), 8);
    }

    #[test]
    fn index_of() {
        let rule =
            |t: &str| json!({"type": "indexOf", "inputTemplate": t, "outputPath": "working.out"});
        let list = json!([1, 2, "2", {"k": 1}, true]);
        assert_eq!(one(rule("2"), list.clone()).1, json!(1));
        assert_eq!(one(rule("{{data.n}}"), list.clone()).1, json!(1));
        assert_eq!(one(rule("{{data.x}}"), list.clone()).1, json!(3));
        assert_eq!(one(rule("true"), list.clone()).1, json!(4));
        assert_eq!(one(rule("nope"), list).1, json!(-1));
    }

    #[test]
    fn filter() {
        let rule = json!({"type": "filter", "inputTemplate": "{{value.t}} > {{payload.data.limit}} && {{index}} < length({{array}}) - 1",
            "outputPath": "working.hot"});
        let config = json!({"sourceArrayPath": "data.list", "rules": [rule]});
        let (_, after) = run_node(
            "ArrayNode",
            &config,
            json!({"data": {"limit": 30, "list": [{"t": 31}, {"t": 12}, {"t": 40}, {"t": 50}]}}),
        )
        .unwrap();
        assert_eq!(after["working"]["hot"], json!([{"t": 31}, {"t": 40}]));
        assert_eq!(
            super::own_variables("{{array}} {{{ array }}} {{~array~}} {{array.length}}"),
            "{{./array}} {{{./array}}} {{~./array~}} {{array.length}}"
        );
        assert_eq!(after["data"]["list"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn rules_chain_and_write_to_the_destination() {
        let config = json!({"sourceArrayPath": "data.list", "destArrayPath": "working.list", "rules": [
            {"type": "push", "inputTemplate": "{{data.n}}"},
            {"type": "length", "outputPath": "working.len"},
            {"type": "filter", "inputTemplate": "{{value}} > 1", "outputPath": "working.big"},
            {"type": "reverse"}
        ]});
        let (_, after) = run_node(
            "ArrayNode",
            &config,
            json!({"data": {"list": [1, 3], "n": 2}}),
        )
        .unwrap();
        assert_eq!(after["data"]["list"], json!([1, 3]));
        assert_eq!(after["working"]["list"], json!([2, 3, 1]));
        assert_eq!(after["working"]["len"], json!(3));
        assert_eq!(after["working"]["big"], json!([3, 2]));
        // Computing rules alone leave the destination alone.
        let config = json!({"sourceArrayPath": "data.list", "destArrayPath": "working.out",
            "rules": [{"type": "filter", "inputTemplate": "{{value}} > 1", "outputPath": "working.out"}]});
        let (_, after) = run_node("ArrayNode", &config, json!({"data": {"list": [1, 3]}})).unwrap();
        assert_eq!(after["working"]["out"], json!([3]));
    }

    #[test]
    fn sources_that_are_not_arrays() {
        // Nothing there: an empty array is created.
        let after = run(
            json!([{"type": "length", "outputPath": "working.n"}]),
            json!({"data": {}}),
        );
        assert_eq!(after["data"]["list"], json!([]));
        assert_eq!(after["working"]["n"], json!(0));
        let after = run(
            json!([{"type": "push", "inputTemplate": "x"}]),
            json!({"data": {"list": 5}}),
        );
        assert_eq!(after["data"]["list"], json!(["x"]));
        // A string is its characters and stays a string.
        let after = run(
            json!([{"type": "reverse"}, {"type": "length", "outputPath": "working.n"}]),
            json!({"data": {"list": "héllo"}}),
        );
        assert_eq!(after["data"]["list"], json!("héllo"));
        assert_eq!(after["working"]["n"], json!(5));
        let config = json!({"sourceArrayPath": "data.s", "destArrayPath": "working.chars",
            "rules": [{"type": "reverse"}]});
        let (_, after) = run_node("ArrayNode", &config, json!({"data": {"s": "abc"}})).unwrap();
        assert_eq!(after["working"]["chars"], json!(["c", "b", "a"]));
        assert_eq!(after["data"]["s"], json!("abc"));
    }

    #[test]
    fn failures_halt() {
        let e = fails(
            json!({"type": "insertAt", "inputTemplate": "x", "indexTemplate": "{{data.i}}"}),
            json!([]),
        );
        assert_eq!(e.name, ErrorName::TemplateError);
        let e = fails(
            json!({"type": "lookupAt", "indexTemplate": "first", "outputPath": "o"}),
            json!([]),
        );
        assert_eq!(e.name, ErrorName::ValidationError);
        let e = fails(
            json!({"type": "push", "inputTemplate": "{{data.missing}}"}),
            json!([]),
        );
        assert_eq!(e.name, ErrorName::TemplateError);
        let e = fails(
            json!({"type": "filter", "inputTemplate": "{{decodeURIComponent value}} == 'x'", "outputPath": "o"}),
            json!(["%"]),
        );
        assert_eq!(e.name, ErrorName::ExpressionError, "{e}");
        // null through the passthrough is a value.
        let config = json!({"sourceArrayPath": "data.list", "rules": [
            {"type": "push", "inputTemplate": "{{data.none}}"}]});
        let (_, after) = run_node(
            "ArrayNode",
            &config,
            json!({"data": {"list": [], "none": null}}),
        )
        .unwrap();
        assert_eq!(after["data"]["list"], json!([null]));
    }

    #[test]
    fn config_is_checked() {
        let ok = json!({"sourceArrayPath": "a", "rules": [{"type": "length", "outputPath": "n"}]});
        assert_eq!(compile_node("ArrayNode", &ok).unwrap().ports, 1);
        assert!(compile_node("ArrayNode", &json!({"sourceArrayPath": "a", "rules": []})).is_ok());
        let sixteen: Vec<Value> = (0..16).map(|_| json!({"type": "reverse"})).collect();
        for bad in [
            json!({"rules": []}),
            json!({"sourceArrayPath": "a"}),
            json!({"sourceArrayPath": "a", "rules": sixteen}),
            json!({"sourceArrayPath": "a", "rules": {}}),
            json!({"sourceArrayPath": "{{a}}", "rules": []}),
            json!({"sourceArrayPath": "a", "destArrayPath": "a..b", "rules": []}),
            json!({"sourceArrayPath": "a", "rules": [{}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "shuffle"}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "push"}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "push", "inputTemplate": "{{#if}}"}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "push", "inputTemplate": {"a": 1}}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "length"}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "insertAt", "inputTemplate": "x"}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "lookupAt", "indexTemplate": "1"}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "filter", "outputPath": "o"}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "filter", "inputTemplate": "value > 1", "outputPath": "o"}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "groupBy", "inputTemplate": "{{value.s}}", "outputPath": "o"}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "sort", "order": "up", "outputPath": "o"}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "sortBy", "outputPath": "o"}]}),
            json!({"sourceArrayPath": "a", "rules": [{"type": "pop", "outputPath": "o..p"}]}),
        ] {
            let error = compile_node("ArrayNode", &bad).err().expect("refused");
            assert!(error.0.contains("(ArrayNode)"), "{bad}: {error}");
        }
        // Bare numbers are accepted for index templates.
        let ok = json!({"sourceArrayPath": "a", "rules": [
            {"type": "lookupAt", "indexTemplate": 2, "outputPath": "o"},
            {"type": "slice", "inputTemplate": 1},
            {"type": "pop"}]});
        assert!(compile_node("ArrayNode", &ok).is_ok());
    }
}
