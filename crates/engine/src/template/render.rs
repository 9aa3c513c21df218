//! Rendering: walks the compiled nodes over the payload, borrowing from it wherever it can.

use super::encode::escape_html_into;
use super::helpers::{self, BlockKind};
use super::parse::{Block, DataName, Expr, Node, PathExpr, PathRoot, Segment};
use super::TemplateError;
use crate::value::{number_to_string, JsValue};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A value during rendering: borrowed from the payload, or made by a helper.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Ref(&'a Value),
    Own(JsValue),
}

pub(crate) const UNDEFINED: Val<'static> = Val::Own(JsValue::Undefined);

impl<'a> Val<'a> {
    pub fn into_js(self) -> JsValue {
        match self {
            Val::Ref(v) => JsValue::from(v),
            Val::Own(v) => v,
        }
    }

    /// A `JsValue` view: borrowed when the value is already one, converted (cheaply for
    /// scalars) when it is a payload value.
    pub fn js(&self) -> Cow<'_, JsValue> {
        match self {
            Val::Ref(v) => Cow::Owned(JsValue::from(*v)),
            Val::Own(v) => Cow::Borrowed(v),
        }
    }

    pub fn is_nullish(&self) -> bool {
        matches!(
            self,
            Val::Ref(Value::Null) | Val::Own(JsValue::Null) | Val::Own(JsValue::Undefined)
        )
    }

    pub fn is_undefined(&self) -> bool {
        matches!(self, Val::Own(JsValue::Undefined))
    }

    pub fn to_number(&self) -> f64 {
        match self {
            Val::Ref(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Val::Ref(v) => JsValue::from(*v).to_number(),
            Val::Own(v) => v.to_number(),
        }
    }

    pub fn truthy(&self) -> bool {
        match self {
            Val::Ref(Value::Null) => false,
            Val::Ref(Value::Bool(b)) => *b,
            Val::Ref(Value::Number(n)) => {
                let n = n.as_f64().unwrap_or(f64::NAN);
                n != 0.0 && !n.is_nan()
            }
            Val::Ref(Value::String(s)) => !s.is_empty(),
            Val::Ref(_) => true,
            Val::Own(v) => v.truthy(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Ref(Value::Null) => "null",
            Val::Ref(Value::Bool(_)) => "boolean",
            Val::Ref(Value::Number(_)) => "number",
            Val::Ref(Value::String(_)) => "string",
            Val::Ref(Value::Array(_)) => "array",
            Val::Ref(Value::Object(_)) => "object",
            Val::Own(v) => v.type_name(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Ref(Value::String(s)) | Val::Own(JsValue::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Val::Ref(Value::Array(items)) | Val::Own(JsValue::Array(items)) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Map<String, Value>> {
        match self {
            Val::Ref(Value::Object(map)) | Val::Own(JsValue::Object(map)) => Some(map),
            _ => None,
        }
    }

    /// `String(value)` (`undefined`, `null` included).
    pub fn to_js_string(&self) -> Cow<'_, str> {
        match self {
            Val::Ref(Value::String(s)) | Val::Own(JsValue::String(s)) => Cow::Borrowed(s),
            Val::Ref(Value::Number(n)) => {
                Cow::Owned(number_to_string(n.as_f64().unwrap_or(f64::NAN)))
            }
            Val::Ref(v) => Cow::Owned(JsValue::from(*v).to_js_string()),
            Val::Own(v) => Cow::Owned(v.to_js_string()),
        }
    }

    /// How a mustache prints the value: `String(value)`, but nothing for null and undefined.
    pub fn display(&self) -> Cow<'_, str> {
        if self.is_nullish() {
            Cow::Borrowed("")
        } else {
            self.to_js_string()
        }
    }

    /// The value as JSON (`undefined` → `None`).
    pub fn to_json(&self) -> Option<Value> {
        match self {
            Val::Ref(v) => Some((*v).clone()),
            Val::Own(v) => v.to_json(),
        }
    }

    /// The value as a borrowed JSON value when it is one, for helpers that read JSON.
    pub fn json(&self) -> Cow<'_, Value> {
        match self {
            Val::Ref(v) => Cow::Borrowed(*v),
            Val::Own(JsValue::Array(items)) => Cow::Owned(Value::Array(items.clone())),
            Val::Own(JsValue::Object(map)) => Cow::Owned(Value::Object(map.clone())),
            Val::Own(v) => Cow::Owned(v.to_json().unwrap_or(Value::Null)),
        }
    }

    /// Makes the value independent of the payload.
    pub fn into_owned(self) -> Val<'static> {
        Val::Own(self.into_js())
    }

    /// Handlebars's `isEmpty` (what `#if` and `#with` test): falsy values other than `0`, and
    /// empty arrays.
    pub fn hbs_empty(&self) -> bool {
        if let Some(items) = self.as_array() {
            return items.is_empty();
        }
        let zero = matches!(self, Val::Ref(Value::Number(n)) if n.as_f64() == Some(0.0))
            || matches!(self, Val::Own(JsValue::Number(n)) if *n == 0.0);
        !self.truthy() && !zero
    }
}

/// A property of a payload value, as JavaScript reads it (own properties only): object keys,
/// array indexes and `length`, string characters (UTF-16 units) and `length`.
pub(crate) fn prop_of_value<'b>(value: &'b Value, seg: &Segment) -> Val<'b> {
    match value {
        Value::Object(map) => map.get(&*seg.key).map_or(UNDEFINED, Val::Ref),
        Value::Array(items) => array_prop(items, seg),
        Value::String(s) => string_prop(s, seg),
        _ => UNDEFINED,
    }
}

fn array_prop<'b>(items: &'b [Value], seg: &Segment) -> Val<'b> {
    match seg.index {
        Some(i) => items.get(i).map_or(UNDEFINED, Val::Ref),
        None if &*seg.key == "length" => Val::Own(JsValue::Number(items.len() as f64)),
        None => UNDEFINED,
    }
}

fn string_prop(s: &str, seg: &Segment) -> Val<'static> {
    match seg.index {
        Some(i) => s.encode_utf16().nth(i).map_or(UNDEFINED, |unit| {
            Val::Own(JsValue::String(String::from_utf16_lossy(&[unit])))
        }),
        None if &*seg.key == "length" => Val::Own(JsValue::Number(s.encode_utf16().count() as f64)),
        None => UNDEFINED,
    }
}

/// A property of a value (borrowing from it).
pub(crate) fn prop<'b>(base: &'b Val<'_>, seg: &Segment) -> Val<'b> {
    match base {
        Val::Ref(v) => prop_of_value(v, seg),
        Val::Own(JsValue::Object(map)) => map.get(&*seg.key).map_or(UNDEFINED, Val::Ref),
        Val::Own(JsValue::Array(items)) => array_prop(items, seg),
        Val::Own(JsValue::String(s)) => string_prop(s, seg),
        Val::Own(_) => UNDEFINED,
    }
}

/// A property of a value, consuming it (owned values give owned results).
pub(crate) fn prop_owned<'a>(base: Val<'a>, seg: &Segment) -> Val<'a> {
    match base {
        Val::Ref(v) => prop_of_value(v, seg),
        own => prop(&own, seg).into_owned(),
    }
}

/// An `#each` iteration frame: what `@index`, `@key`, `@first` and `@last` read.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub index: usize,
    pub key: Option<&'a str>,
    pub first: bool,
    pub last: bool,
    pub parent: Option<&'a Frame<'a>>,
}

/// The rendering context: `this`, the enclosing contexts (for `../`), the nearest `#each`
/// frame and the root payload.
pub(crate) struct Scope<'a> {
    pub this: &'a Val<'a>,
    pub parent: Option<&'a Scope<'a>>,
    pub frame: Option<&'a Frame<'a>>,
    pub root: &'a Value,
}

fn eval_path<'a>(path: &PathExpr, scope: &Scope<'a>) -> Val<'a> {
    let segments = &path.segments[..];
    let base: Val<'a> = match &path.root {
        PathRoot::Context { depth } => {
            let mut s: &Scope<'a> = scope;
            for _ in 0..*depth {
                match s.parent {
                    Some(p) => s = p,
                    None => return UNDEFINED,
                }
            }
            let this: &'a Val<'a> = s.this;
            let Some((first, rest)) = segments.split_first() else {
                return this.clone();
            };
            let mut current = prop(this, first);
            for seg in rest {
                current = prop_owned(current, seg);
            }
            return current;
        }
        PathRoot::Root => Val::Ref(scope.root),
        PathRoot::Data { name, depth } => {
            let mut frame = scope.frame;
            for _ in 0..*depth {
                frame = frame.and_then(|f| f.parent);
            }
            let Some(frame) = frame else {
                return UNDEFINED;
            };
            match name {
                DataName::Index => Val::Own(JsValue::Number(frame.index as f64)),
                DataName::Key => match frame.key {
                    Some(k) => Val::Own(JsValue::String(k.to_owned())),
                    None => Val::Own(JsValue::Number(frame.index as f64)),
                },
                DataName::First => Val::Own(JsValue::Bool(frame.first)),
                DataName::Last => Val::Own(JsValue::Bool(frame.last)),
                DataName::Other => UNDEFINED,
            }
        }
    };
    segments
        .iter()
        .fold(base, |current, seg| prop_owned(current, seg))
}

/// Evaluates a value expression.
pub(crate) fn eval<'a>(expr: &Expr, scope: &Scope<'a>) -> Result<Val<'a>, TemplateError> {
    match expr {
        Expr::Literal(v) => Ok(Val::Own(v.clone())),
        Expr::Path(p) => Ok(eval_path(p, scope)),
        Expr::Call(call) => helpers::call(call, scope),
    }
}

/// Renders nodes into `out`.
pub(crate) fn render_nodes(
    nodes: &[Node],
    scope: &Scope<'_>,
    out: &mut String,
) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Output { expr, escape } => {
                let value = eval(expr, scope)?;
                let text = value.display();
                let safe = matches!(expr, Expr::Call(c) if c.id.safe_output());
                if *escape && !safe {
                    escape_html_into(out, &text);
                } else {
                    out.push_str(&text);
                }
            }
            Node::Block(block) => render_block(block, scope, out)?,
        }
    }
    Ok(())
}

fn hash_flag(block: &Block, name: &str, scope: &Scope<'_>) -> Result<bool, TemplateError> {
    for (key, expr) in &block.hash {
        if &**key == name {
            return Ok(eval(expr, scope)?.truthy());
        }
    }
    Ok(false)
}

fn render_block(block: &Block, scope: &Scope<'_>, out: &mut String) -> Result<(), TemplateError> {
    let arg = |i: usize| eval(&block.params[i], scope);
    let condition = match block.kind {
        BlockKind::If | BlockKind::Unless => {
            let value = arg(0)?;
            // Handlebars: `(!includeZero && !value) || isEmpty(value)` takes the inverse.
            let include_zero = hash_flag(block, "includeZero", scope)?;
            let truthy = (include_zero || value.truthy()) && !value.hbs_empty();
            truthy == (block.kind == BlockKind::If)
        }
        BlockKind::With => {
            let value = arg(0)?;
            if value.hbs_empty() {
                return render_nodes(&block.inverse, scope, out);
            }
            let child = Scope {
                this: &value,
                parent: Some(scope),
                frame: scope.frame,
                root: scope.root,
            };
            return render_nodes(&block.body, &child, out);
        }
        BlockKind::Each => return render_each(block, scope, out),
        BlockKind::Match => {
            let subject = arg(0)?;
            match &block.regex {
                Some(re) => helpers::regex_test(re, &subject.to_js_string())?,
                None => {
                    let pattern = arg(1)?;
                    let re =
                        helpers::compile_regex(&pattern.to_js_string()).map_err(|message| {
                            TemplateError::Helper {
                                helper: "match".into(),
                                message,
                            }
                        })?;
                    helpers::regex_test(&re, &subject.to_js_string())?
                }
            }
        }
        kind => {
            let (a, b) = (arg(0)?, arg(1)?);
            helpers::compare_block(kind, &a, &b)
        }
    };
    if condition {
        render_nodes(&block.body, scope, out)
    } else {
        render_nodes(&block.inverse, scope, out)
    }
}

fn render_each(block: &Block, scope: &Scope<'_>, out: &mut String) -> Result<(), TemplateError> {
    let collection = eval(&block.params[0], scope)?;
    let mut rendered = false;
    if let Some(items) = collection.as_array() {
        let n = items.len();
        for (i, item) in items.iter().enumerate() {
            let this = Val::Ref(item);
            let frame = Frame {
                index: i,
                key: None,
                first: i == 0,
                last: i + 1 == n,
                parent: scope.frame,
            };
            let child = Scope {
                this: &this,
                parent: Some(scope),
                frame: Some(&frame),
                root: scope.root,
            };
            render_nodes(&block.body, &child, out)?;
            rendered = true;
        }
    } else if let Some(map) = collection.as_object() {
        let n = map.len();
        for (i, (key, item)) in map.iter().enumerate() {
            let this = Val::Ref(item);
            let frame = Frame {
                index: i,
                key: Some(key),
                first: i == 0,
                last: i + 1 == n,
                parent: scope.frame,
            };
            let child = Scope {
                this: &this,
                parent: Some(scope),
                frame: Some(&frame),
                root: scope.root,
            };
            render_nodes(&block.body, &child, out)?;
            rendered = true;
        }
    }
    if !rendered {
        render_nodes(&block.inverse, scope, out)?;
    }
    Ok(())
}
