//! The helper catalogue (FLOW-JSON §9.3, WORKFLOW-SPEC §6.2): block helpers, which the parser
//! turns into [`Block`](super::parse::Block)s, and format helpers, which are [`Call`]s.

use super::d3_format;
use super::encode;
use super::gps;
use super::html;
use super::moment::{self, Zone};
use super::parse::{Expr, Options, Segment};
use super::render::{eval, prop_owned, Scope, Val, UNDEFINED};
use super::{Template, TemplateError};
use crate::expression::Expression;
use crate::path::PayloadPath;
use crate::value::{compare, strict_equals, JsValue};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::sync::LazyLock;

/// The block helpers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockKind {
    If,
    Unless,
    Each,
    With,
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Match,
    Includes,
}

impl BlockKind {
    pub fn from_name(name: &str) -> Option<BlockKind> {
        Some(match name {
            "if" => BlockKind::If,
            "unless" => BlockKind::Unless,
            "each" => BlockKind::Each,
            "with" => BlockKind::With,
            "eq" => BlockKind::Eq,
            "ne" => BlockKind::Ne,
            "gt" => BlockKind::Gt,
            "gte" => BlockKind::Gte,
            "lt" => BlockKind::Lt,
            "lte" => BlockKind::Lte,
            "match" => BlockKind::Match,
            "includes" => BlockKind::Includes,
            _ => return None,
        })
    }

    pub fn arity(self) -> usize {
        match self {
            BlockKind::If | BlockKind::Unless | BlockKind::Each | BlockKind::With => 1,
            _ => 2,
        }
    }
}

macro_rules! helper_ids {
    ($($id:ident => $name:literal),* $(,)?) => {
        /// The format helpers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum HelperId { $($id),* }

        impl HelperId {
            pub fn from_name(name: &str) -> Option<HelperId> {
                match name {
                    $($name => Some(HelperId::$id),)*
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(HelperId::$id => $name,)*
                }
            }
        }

        /// Every format helper's name (for documentation and tests).
        pub const HELPER_NAMES: &[&str] = &[$($name),*];
    };
}

helper_ids! {
    Add => "add",
    Subtract => "subtract",
    Multiply => "multiply",
    Divide => "divide",
    Ceil => "ceil",
    Floor => "floor",
    Max => "max",
    Min => "min",
    ScaleLinear => "scaleLinear",
    Upper => "upper",
    Lower => "lower",
    TitleCase => "titleCase",
    Trim => "trim",
    Substring => "substring",
    Join => "join",
    Length => "length",
    DefaultTo => "defaultTo",
    Typeof => "typeof",
    EncodeUri => "encodeURI",
    DecodeUri => "decodeURI",
    EncodeUriComponent => "encodeURIComponent",
    DecodeUriComponent => "decodeURIComponent",
    EncodeBase64 => "encodeBase64",
    DecodeBase64 => "decodeBase64",
    QueryStringEncode => "queryStringEncode",
    JsonEncode => "jsonEncode",
    JsonDecode => "jsonDecode",
    Format => "format",
    FormatDate => "formatDate",
    FormatDateRelative => "formatDateRelative",
    CurrentDateTime => "currentDateTime",
    Array => "array",
    Obj => "obj",
    Merge => "merge",
    Lookup => "lookup",
    Last => "last",
    IndexByKey => "indexByKey",
    ValueByKey => "valueByKey",
    FormatGps => "formatGps",
    GpsDistance => "gpsDistance",
    GpsIsPointInside => "gpsIsPointInside",
    Template => "template",
    EvalExpression => "evalExpression",
    ToHtml => "toHtml",
    Log => "log",
    Eq => "eq",
    Ne => "ne",
    Gt => "gt",
    Gte => "gte",
    Lt => "lt",
    Lte => "lte",
    Match => "match",
    Includes => "includes",
}

impl HelperId {
    /// `template` and `evalExpression`, which compile text of their own.
    pub fn is_meta(self) -> bool {
        matches!(self, HelperId::Template | HelperId::EvalExpression)
    }

    /// Helpers whose output is a Handlebars "safe string" (not HTML-escaped by `{{ }}`):
    /// `jsonEncode` (FLOW-JSON §9.3 recommends never escaping it, so `{{jsonEncode x}}` and
    /// `{{{jsonEncode x}}}` both give raw JSON) and `template` (its own mustaches already
    /// escaped what they printed; escaping again would double-escape).
    pub fn safe_output(self) -> bool {
        matches!(self, HelperId::JsonEncode | HelperId::Template)
    }
}

/// Work done at compile time for literal arguments.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prepared {
    d3: Option<Result<d3_format::Spec, String>>,
    moment: Option<moment::Format>,
    zone: Option<Zone>,
    regex: Option<fancy_regex::Regex>,
    template: Option<Template>,
    expression: Option<Expression>,
    key_path: Option<PayloadPath>,
    value_path: Option<PayloadPath>,
}

/// A compiled helper call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub id: HelperId,
    args: Vec<Expr>,
    hash: Vec<(Box<str>, Expr)>,
    prepared: Option<Box<Prepared>>,
}

fn literal_str(expr: Option<&Expr>) -> Option<&str> {
    match expr {
        Some(Expr::Literal(JsValue::String(s))) => Some(s),
        _ => None,
    }
}

fn helper_error(id: HelperId, message: impl Into<String>) -> TemplateError {
    TemplateError::Helper {
        helper: id.name().into(),
        message: message.into(),
    }
}

/// A lodash-style property path (`key`, `a.b`); a text that is not a valid payload path is
/// one key.
fn key_path(text: &str) -> PayloadPath {
    PayloadPath::parse(text)
        .or_else(|_| PayloadPath::parse(&format!("[{text}]")))
        .unwrap_or_else(|_| PayloadPath::parse("[]").expect("a bracketed key parses"))
}

/// Compiles a helper call, preparing literal arguments.
pub(crate) fn prepare(
    id: HelperId,
    args: Vec<Expr>,
    hash: Vec<(Box<str>, Expr)>,
    options: Options,
) -> Result<Call, TemplateError> {
    let mut p = Prepared::default();
    let mut any = false;
    let tz = hash
        .iter()
        .find(|(k, _)| &**k == "tz")
        .and_then(|(_, e)| literal_str(Some(e)));
    if let Some(tz) = tz {
        p.zone = Some(Zone::parse(tz).map_err(|m| helper_error(id, m))?);
        any = true;
    }
    let meta_options = Options { allow_meta: false };
    let _ = options;
    match id {
        HelperId::Format => {
            if let Some(f) = literal_str(args.get(1)) {
                p.d3 = Some(d3_format::Spec::parse(f));
                p.moment = Some(moment::Format::parse(f));
                any = true;
            }
        }
        HelperId::FormatDate => {
            if let Some(f) = literal_str(args.get(1)) {
                p.moment = Some(moment::Format::parse(f));
                any = true;
            }
        }
        HelperId::CurrentDateTime => {
            if let Some(f) = literal_str(args.first()) {
                p.moment = Some(moment::Format::parse(f));
                any = true;
            }
        }
        HelperId::Match => {
            if let Some(pattern) = literal_str(args.get(1)) {
                p.regex = Some(compile_regex(pattern).map_err(|m| helper_error(id, m))?);
                any = true;
            }
        }
        HelperId::Template => {
            if let Some(text) = literal_str(args.first()) {
                p.template = Some(Template::compile_with(text, meta_options)?);
                any = true;
            }
        }
        HelperId::EvalExpression => {
            if let Some(text) = literal_str(args.first()) {
                let expression = Expression::compile_with(text, meta_options)
                    .map_err(|e| helper_error(id, e.to_string()))?;
                p.expression = Some(expression);
                any = true;
            }
        }
        HelperId::IndexByKey | HelperId::ValueByKey => {
            if let Some(k) = literal_str(args.get(2)) {
                p.key_path = Some(key_path(k));
                any = true;
            }
            if let Some(v) = literal_str(args.get(3)) {
                p.value_path = Some(key_path(v));
                any = true;
            }
        }
        _ => {}
    }
    Ok(Call {
        id,
        args,
        hash,
        prepared: any.then(|| Box::new(p)),
    })
}

/// Compiles a `#match` pattern as `new RegExp(pattern)` would (fancy-regex: lookaround and
/// backreferences work as in JavaScript).
pub(crate) fn compile_regex(pattern: &str) -> Result<fancy_regex::Regex, String> {
    fancy_regex::Regex::new(pattern).map_err(|e| format!("invalid regular expression: {e}"))
}

pub(crate) fn regex_test(re: &fancy_regex::Regex, subject: &str) -> Result<bool, TemplateError> {
    re.is_match(subject).map_err(|e| TemplateError::Helper {
        helper: "match".into(),
        message: e.to_string(),
    })
}

/// `_.includes`: an array or object holding the value (SameValueZero), or a string holding its
/// text.
pub(crate) fn includes(collection: &Val<'_>, value: &Val<'_>) -> bool {
    let target = value.js();
    let same = |item: &Value| {
        let item = JsValue::from(item);
        strict_equals(&item, &target)
    };
    if let Some(items) = collection.as_array() {
        return items.iter().any(same);
    }
    if let Some(map) = collection.as_object() {
        return map.values().any(same);
    }
    if let Some(s) = collection.as_str() {
        return s.contains(&*value.to_js_string());
    }
    false
}

/// The comparison blocks (and their inline forms).
pub(crate) fn compare_block(kind: BlockKind, a: &Val<'_>, b: &Val<'_>) -> bool {
    let (x, y) = (a.js(), b.js());
    match kind {
        BlockKind::Eq => strict_equals(&x, &y),
        BlockKind::Ne => !strict_equals(&x, &y),
        BlockKind::Gt => compare(&x, &y) == Some(Ordering::Greater),
        BlockKind::Gte => matches!(compare(&x, &y), Some(Ordering::Greater | Ordering::Equal)),
        BlockKind::Lt => compare(&x, &y) == Some(Ordering::Less),
        BlockKind::Lte => matches!(compare(&x, &y), Some(Ordering::Less | Ordering::Equal)),
        BlockKind::Includes => includes(a, b),
        _ => false,
    }
}

fn num(n: f64) -> Val<'static> {
    Val::Own(JsValue::Number(n))
}

fn string(s: String) -> Val<'static> {
    Val::Own(JsValue::String(s))
}

fn take<'a>(args: &mut [Val<'a>], i: usize) -> Val<'a> {
    match args.get_mut(i) {
        Some(slot) => std::mem::replace(slot, UNDEFINED),
        None => UNDEFINED,
    }
}

/// `moment(value)`: epoch milliseconds, or `None` for an invalid date.
fn date_of(value: &Val<'_>) -> Option<f64> {
    match value {
        Val::Own(JsValue::Undefined) => Some(now()),
        Val::Own(JsValue::Date(ms)) => Some(*ms),
        Val::Ref(Value::Number(_)) | Val::Own(JsValue::Number(_)) => Some(value.to_number()),
        _ => value.as_str().and_then(moment::parse_date),
    }
}

fn now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64
}

static DEFAULT_NUMBER_FORMAT: LazyLock<d3_format::Spec> =
    LazyLock::new(|| d3_format::Spec::parse(",.6").expect("a valid specifier"));
static DEFAULT_DATE_FORMAT: LazyLock<moment::Format> =
    LazyLock::new(|| moment::Format::parse(moment::DEFAULT_FORMAT));

impl Call {
    fn prepared(&self) -> Option<&Prepared> {
        self.prepared.as_deref()
    }

    fn hash_value<'a>(
        &self,
        name: &str,
        scope: &Scope<'a>,
    ) -> Result<Option<Val<'a>>, TemplateError> {
        for (key, expr) in &self.hash {
            if &**key == name {
                return eval(expr, scope).map(Some);
            }
        }
        Ok(None)
    }

    fn zone(&self, scope: &Scope<'_>) -> Result<Zone, TemplateError> {
        if let Some(zone) = self.prepared().and_then(|p| p.zone) {
            return Ok(zone);
        }
        match self.hash_value("tz", scope)? {
            Some(v) if !v.is_nullish() && v.as_str() != Some("") => {
                Zone::parse(&v.to_js_string()).map_err(|m| helper_error(self.id, m))
            }
            _ => Ok(Zone::Utc),
        }
    }

    /// A Moment format argument: the prepared one, or the value's text, or the default.
    fn moment_format<'f>(
        &'f self,
        value: &Val<'_>,
        holder: &'f mut Option<moment::Format>,
    ) -> &'f moment::Format {
        if let Some(f) = self.prepared().and_then(|p| p.moment.as_ref()) {
            return f;
        }
        if value.is_nullish() {
            return &DEFAULT_DATE_FORMAT;
        }
        holder.insert(moment::Format::parse(&value.to_js_string()))
    }

    fn key_paths(&self, args: &[Val<'_>]) -> (PayloadPath, PayloadPath) {
        let from = |prepared: Option<&PayloadPath>, arg: Option<&Val<'_>>, default: &str| {
            if let Some(p) = prepared {
                return p.clone();
            }
            match arg {
                Some(v) if !v.is_nullish() => key_path(&v.to_js_string()),
                _ => key_path(default),
            }
        };
        let p = self.prepared();
        (
            from(p.and_then(|p| p.key_path.as_ref()), args.get(2), "key"),
            from(p.and_then(|p| p.value_path.as_ref()), args.get(3), "value"),
        )
    }
}

/// Calls a format helper.
pub(crate) fn call<'a>(call: &Call, scope: &Scope<'a>) -> Result<Val<'a>, TemplateError> {
    let mut args: Vec<Val<'a>> = Vec::with_capacity(call.args.len());
    for expr in &call.args {
        args.push(eval(expr, scope)?);
    }
    let n = |i: usize| args.get(i).map_or(f64::NAN, Val::to_number);
    let text = |i: usize| {
        args.get(i)
            .map(|v| v.display().into_owned())
            .unwrap_or_default()
    };
    let id = call.id;
    Ok(match id {
        HelperId::Add => num(n(0) + n(1)),
        HelperId::Subtract => num(n(0) - n(1)),
        HelperId::Multiply => num(n(0) * n(1)),
        HelperId::Divide => num(n(0) / n(1)),
        HelperId::Ceil => num(n(0).ceil()),
        HelperId::Floor => num(n(0).floor()),
        HelperId::Max | HelperId::Min => {
            let max = id == HelperId::Max;
            let mut result = if max {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
            for v in &args {
                let x = v.to_number();
                if x.is_nan() {
                    result = f64::NAN;
                    break;
                }
                let better = if max {
                    x > result || (x == 0.0 && result == 0.0 && result.is_sign_negative())
                } else {
                    x < result || (x == 0.0 && result == 0.0 && x.is_sign_negative())
                };
                if better {
                    result = x;
                }
            }
            num(result)
        }
        HelperId::ScaleLinear => {
            let (d0, d1, r0, r1, x) = (n(0), n(1), n(2), n(3), n(4));
            let span = d1 - d0;
            let t = if span.is_nan() {
                f64::NAN
            } else if span == 0.0 {
                0.5
            } else {
                (x - d0) / span
            };
            num(r0 * (1.0 - t) + r1 * t)
        }
        HelperId::Upper => string(text(0).to_uppercase()),
        HelperId::Lower => string(text(0).to_lowercase()),
        HelperId::TitleCase => string(title_case(&text(0))),
        HelperId::Trim => string(
            text(0)
                .trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
                .to_owned(),
        ),
        HelperId::Substring => {
            let s = text(0);
            let units: Vec<u16> = s.encode_utf16().collect();
            let len = units.len() as f64;
            let clamp = |x: f64| {
                if x.is_nan() {
                    0.0
                } else {
                    x.trunc().clamp(0.0, len)
                }
            };
            let start = clamp(n(1));
            let end = match args.get(2) {
                Some(v) if !v.is_undefined() => clamp(v.to_number()),
                _ => len,
            };
            let (a, b) = if start <= end {
                (start, end)
            } else {
                (end, start)
            };
            string(String::from_utf16_lossy(&units[a as usize..b as usize]))
        }
        HelperId::Join => match args.first().and_then(|v| v.as_array()) {
            Some(items) => {
                let sep = match args.get(1) {
                    Some(v) if !v.is_undefined() => v.to_js_string().into_owned(),
                    _ => ",".to_owned(),
                };
                let parts: Vec<String> = items
                    .iter()
                    .map(|item| Val::Ref(item).display().into_owned())
                    .collect();
                string(parts.join(&sep))
            }
            None => UNDEFINED,
        },
        HelperId::Length => match length(args.first().unwrap_or(&UNDEFINED)) {
            Some(l) => num(l as f64),
            None => UNDEFINED,
        },
        HelperId::DefaultTo => {
            let value = take(&mut args, 0);
            let missing = value.is_nullish()
                || value.as_str() == Some("")
                || (value.type_name() == "number" && value.to_number().is_nan());
            if missing {
                take(&mut args, 1)
            } else {
                value
            }
        }
        HelperId::Typeof => string(args.first().unwrap_or(&UNDEFINED).type_name().to_owned()),
        HelperId::EncodeUri => string(encode::encode_uri(&text(0))),
        HelperId::EncodeUriComponent => string(encode::encode_uri_component(&text(0))),
        HelperId::DecodeUri => {
            string(encode::decode_uri(&text(0)).map_err(|m| helper_error(id, m))?)
        }
        HelperId::DecodeUriComponent => {
            string(encode::decode_uri_component(&text(0)).map_err(|m| helper_error(id, m))?)
        }
        HelperId::EncodeBase64 => string(encode::base64_encode(text(0).as_bytes())),
        HelperId::DecodeBase64 => {
            string(String::from_utf8_lossy(&encode::base64_decode(&text(0))).into_owned())
        }
        HelperId::QueryStringEncode => match args.first().and_then(|v| v.as_object()) {
            Some(map) => string(encode::query_string(map)),
            None => string(String::new()),
        },
        HelperId::JsonEncode => {
            let value = args.first().unwrap_or(&UNDEFINED);
            let indent = match args.get(1) {
                Some(v) if v.type_name() == "number" => {
                    " ".repeat(v.to_number().clamp(0.0, 10.0) as usize)
                }
                Some(v) if v.type_name() == "string" => v.to_js_string().chars().take(10).collect(),
                _ => String::new(),
            };
            match encode::json_stringify(&value.js(), &indent) {
                Some(s) => string(s),
                None => UNDEFINED,
            }
        }
        HelperId::JsonDecode => {
            let value = args.first().unwrap_or(&UNDEFINED);
            if value.is_undefined() {
                UNDEFINED
            } else {
                match serde_json::from_str::<Value>(&value.to_js_string()) {
                    Ok(v) => Val::Own(JsValue::from(v)),
                    Err(_) => UNDEFINED,
                }
            }
        }
        HelperId::Format => format_value(call, &args, call.zone(scope)?)?,
        HelperId::FormatDate => {
            let zone = call.zone(scope)?;
            let value = args.first().unwrap_or(&UNDEFINED);
            let mut holder = None;
            let format = call.moment_format(args.get(1).unwrap_or(&UNDEFINED), &mut holder);
            match date_of(value) {
                Some(ms) => string(format.format(ms, zone)),
                None => string("Invalid date".into()),
            }
        }
        HelperId::CurrentDateTime => {
            let zone = call.zone(scope)?;
            let mut holder = None;
            let format = call.moment_format(args.first().unwrap_or(&UNDEFINED), &mut holder);
            string(format.format(now(), zone))
        }
        HelperId::FormatDateRelative => {
            let date = date_of(args.first().unwrap_or(&UNDEFINED));
            let reference = date_of(args.get(1).unwrap_or(&UNDEFINED));
            match (date, reference) {
                (Some(d), Some(r)) => string(moment::relative(d, r)),
                _ => string("Invalid date".into()),
            }
        }
        HelperId::Array => Val::Own(JsValue::Array(
            args.iter()
                .map(|v| v.to_json().unwrap_or(Value::Null))
                .collect(),
        )),
        HelperId::Obj => {
            let mut map = Map::new();
            for (key, expr) in &call.hash {
                if let Some(v) = eval(expr, scope)?.to_json() {
                    map.insert(key.to_string(), v);
                }
            }
            Val::Own(JsValue::Object(map))
        }
        HelperId::Merge => {
            let mut map = Map::new();
            for v in &args {
                if let Some(m) = v.as_object() {
                    for (k, item) in m {
                        map.insert(k.clone(), item.clone());
                    }
                }
            }
            Val::Own(JsValue::Object(map))
        }
        HelperId::Lookup => {
            let collection = take(&mut args, 0);
            if !collection.truthy() {
                return Ok(collection);
            }
            let key = args.get(1).unwrap_or(&UNDEFINED).to_js_string();
            prop_owned(collection, &Segment::new(&key))
        }
        HelperId::Last => {
            let value = take(&mut args, 0);
            match &value {
                Val::Ref(Value::Array(items)) => items.last().map_or(UNDEFINED, Val::Ref),
                _ => {
                    if let Some(items) = value.as_array() {
                        items
                            .last()
                            .map_or(UNDEFINED, |v| Val::Own(JsValue::from(v)))
                    } else if let Some(s) = value.as_str() {
                        s.encode_utf16()
                            .last()
                            .map_or(UNDEFINED, |u| string(String::from_utf16_lossy(&[u])))
                    } else {
                        UNDEFINED
                    }
                }
            }
        }
        HelperId::IndexByKey | HelperId::ValueByKey => {
            let (key_path, value_path) = call.key_paths(&args);
            let wanted = args.get(1).unwrap_or(&UNDEFINED).js().into_owned();
            let found = args.first().and_then(|v| v.as_array()).and_then(|items| {
                items.iter().position(|item| {
                    let v = JsValue::from(key_path.get(item).as_deref());
                    strict_equals(&v, &wanted)
                })
            });
            if id == HelperId::IndexByKey {
                num(found.map_or(-1.0, |i| i as f64))
            } else {
                match found {
                    Some(i) => {
                        let items = args[0].as_array().expect("found in an array");
                        match value_path.get(&items[i]) {
                            Some(v) => Val::Own(JsValue::from(v.into_owned())),
                            None => UNDEFINED,
                        }
                    }
                    None => UNDEFINED,
                }
            }
        }
        HelperId::FormatGps => {
            let point = args.first().and_then(|v| gps::point(&v.json()));
            let style = match args.get(1) {
                Some(v) if !v.is_nullish() => v.to_js_string().into_owned(),
                _ => "decimal".to_owned(),
            };
            let precision = match args.get(2) {
                Some(v) if !v.is_nullish() => {
                    let p = v.to_number();
                    if p.is_nan() {
                        6
                    } else {
                        p.clamp(0.0, 20.0) as usize
                    }
                }
                _ => 6,
            };
            match point.and_then(|p| gps::format(p, &style, precision)) {
                Some(s) => string(s),
                None => UNDEFINED,
            }
        }
        HelperId::GpsDistance => {
            let a = args.first().and_then(|v| gps::point(&v.json()));
            let b = args.get(1).and_then(|v| gps::point(&v.json()));
            match (a, b) {
                (Some(a), Some(b)) => num(gps::distance(a, b)),
                _ => UNDEFINED,
            }
        }
        HelperId::GpsIsPointInside => {
            let p = args.first().and_then(|v| gps::point(&v.json()));
            let poly = args.get(1).and_then(|v| gps::polygon(&v.json()));
            Val::Own(JsValue::Bool(match (p, poly) {
                (Some(p), Some(poly)) => gps::inside(p, &poly),
                _ => false,
            }))
        }
        HelperId::Template => {
            let context = context_value(args.get(1), scope);
            let rendered = match call.prepared().and_then(|p| p.template.as_ref()) {
                Some(t) => t.render(&context)?,
                None => {
                    let source = args.first().unwrap_or(&UNDEFINED).display().into_owned();
                    let t = Template::compile_with(&source, Options { allow_meta: false })?;
                    t.render(&context)?
                }
            };
            string(rendered)
        }
        HelperId::EvalExpression => {
            let context = context_value(args.get(1), scope);
            let result = match call.prepared().and_then(|p| p.expression.as_ref()) {
                Some(e) => e.evaluate(&context),
                None => {
                    let source = args.first().unwrap_or(&UNDEFINED).display().into_owned();
                    Expression::compile_with(&source, Options { allow_meta: false })
                        .and_then(|e| e.evaluate(&context))
                }
            };
            Val::Own(result.map_err(|e| helper_error(id, e.to_string()))?)
        }
        HelperId::ToHtml => string(html::to_html(&args.first().unwrap_or(&UNDEFINED).json())),
        HelperId::Log => UNDEFINED,
        HelperId::Eq => bool_of(BlockKind::Eq, &args),
        HelperId::Ne => bool_of(BlockKind::Ne, &args),
        HelperId::Gt => bool_of(BlockKind::Gt, &args),
        HelperId::Gte => bool_of(BlockKind::Gte, &args),
        HelperId::Lt => bool_of(BlockKind::Lt, &args),
        HelperId::Lte => bool_of(BlockKind::Lte, &args),
        HelperId::Includes => bool_of(BlockKind::Includes, &args),
        HelperId::Match => {
            let subject = args
                .first()
                .unwrap_or(&UNDEFINED)
                .to_js_string()
                .into_owned();
            let matched = match call.prepared().and_then(|p| p.regex.as_ref()) {
                Some(re) => regex_test(re, &subject)?,
                None => {
                    let pattern = args.get(1).unwrap_or(&UNDEFINED).to_js_string();
                    let re = compile_regex(&pattern).map_err(|m| helper_error(id, m))?;
                    regex_test(&re, &subject)?
                }
            };
            Val::Own(JsValue::Bool(matched))
        }
    })
}

fn bool_of(kind: BlockKind, args: &[Val<'_>]) -> Val<'static> {
    let a = args.first().unwrap_or(&UNDEFINED);
    let b = args.get(1).unwrap_or(&UNDEFINED);
    Val::Own(JsValue::Bool(compare_block(kind, a, b)))
}

/// The context `template`/`evalExpression` render against: the given value, else the payload.
fn context_value<'v>(
    arg: Option<&'v Val<'_>>,
    scope: &'v Scope<'_>,
) -> std::borrow::Cow<'v, Value> {
    match arg {
        Some(v) if !v.is_undefined() => v.json(),
        _ => std::borrow::Cow::Borrowed(scope.root),
    }
}

/// Items of an array, keys of an object, UTF-16 units of a string.
pub(crate) fn length(value: &Val<'_>) -> Option<usize> {
    if let Some(items) = value.as_array() {
        return Some(items.len());
    }
    if let Some(map) = value.as_object() {
        return Some(map.len());
    }
    value.as_str().map(|s| s.encode_utf16().count())
}

/// `\w\S*` words get an upper-case first letter and a lower-case rest.
fn title_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() {
            in_word = false;
            out.push(c);
        } else if in_word {
            out.extend(c.to_lowercase());
        } else if c.is_ascii_alphanumeric() || c == '_' {
            in_word = true;
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `format value fmt?`: numbers through d3-format (`,.6` by default), dates (and ISO date
/// strings, which is how payload dates travel) through Moment (`L LTS`), objects and arrays as
/// JSON, anything else as its text.
fn format_value<'a>(call: &Call, args: &[Val<'a>], zone: Zone) -> Result<Val<'a>, TemplateError> {
    let value = args.first().unwrap_or(&UNDEFINED);
    let fmt = args.get(1).unwrap_or(&UNDEFINED);
    let prepared = call.prepared();
    let is_date = matches!(value, Val::Own(JsValue::Date(_)))
        || value.as_str().is_some_and(moment::looks_like_iso_date);
    if value.type_name() == "number" {
        let x = value.to_number();
        let text = match prepared.and_then(|p| p.d3.as_ref()) {
            Some(Ok(spec)) => spec.format(x),
            Some(Err(message)) => return Err(helper_error(call.id, message.clone())),
            None if fmt.is_nullish() => DEFAULT_NUMBER_FORMAT.format(x),
            None => d3_format::Spec::parse(&fmt.to_js_string())
                .map_err(|m| helper_error(call.id, m))?
                .format(x),
        };
        return Ok(string(text));
    }
    if is_date {
        let ms = date_of(value).unwrap_or(f64::NAN);
        let mut holder = None;
        let format = call.moment_format(fmt, &mut holder);
        return Ok(string(format.format(ms, zone)));
    }
    if value.as_array().is_some() || value.as_object().is_some() {
        return Ok(string(encode::json_compact(&value.json())));
    }
    if value.is_nullish() {
        return Ok(UNDEFINED);
    }
    Ok(string(value.to_js_string().into_owned()))
}
