//! JavaScript value semantics, which Losant's templates and expressions follow and Rust's do not:
//! how values print (`String(v)`), convert to numbers (`Number(v)`), test as booleans, compare
//! (`==`, `===`, `<`) and add (`+`).
//!
//! The payload itself is JSON (`serde_json::Value`); [`JsValue`] adds what JSON lacks and
//! expressions need: `undefined`, `NaN`/`Infinity`, and dates. Converting back to JSON follows
//! `JSON.stringify`: `undefined` is absent, non-finite numbers become `null`, dates become ISO
//! strings.

use serde_json::{Map, Number, Value};
use std::cmp::Ordering;

/// A JavaScript value.
#[derive(Debug, Clone, PartialEq)]
pub enum JsValue {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    /// Milliseconds since the epoch (a JS `Date`).
    Date(f64),
    Array(Vec<Value>),
    Object(Map<String, Value>),
}

impl From<&Value> for JsValue {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => JsValue::Null,
            Value::Bool(b) => JsValue::Bool(*b),
            Value::Number(n) => JsValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => JsValue::String(s.clone()),
            Value::Array(items) => JsValue::Array(items.clone()),
            Value::Object(map) => JsValue::Object(map.clone()),
        }
    }
}

impl From<Value> for JsValue {
    fn from(value: Value) -> Self {
        match value {
            Value::String(s) => JsValue::String(s),
            Value::Array(items) => JsValue::Array(items),
            Value::Object(map) => JsValue::Object(map),
            other => JsValue::from(&other),
        }
    }
}

impl From<Option<&Value>> for JsValue {
    fn from(value: Option<&Value>) -> Self {
        value.map_or(JsValue::Undefined, JsValue::from)
    }
}

impl From<f64> for JsValue {
    fn from(n: f64) -> Self {
        JsValue::Number(n)
    }
}

impl From<bool> for JsValue {
    fn from(b: bool) -> Self {
        JsValue::Bool(b)
    }
}

impl From<&str> for JsValue {
    fn from(s: &str) -> Self {
        JsValue::String(s.to_owned())
    }
}

/// A number as JSON: integral values within the safe range stay integers (`12`, not `12.0`),
/// non-finite ones have no JSON form (`None`).
pub fn number_to_json(n: f64) -> Option<Value> {
    if !n.is_finite() {
        return None;
    }
    if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_991.0 {
        // -0 prints as 0 in JSON too.
        return Some(Value::Number(Number::from(n as i64)));
    }
    Number::from_f64(n).map(Value::Number)
}

/// `Number.prototype.toString()`: shortest round-trip digits, JavaScript's exponent rules
/// (`1e+21`, `1e-7`), `NaN`, `Infinity`, and `0` for `-0`.
pub fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if n == 0.0 {
        return "0".into();
    }
    let mut buffer = ryu_js::Buffer::new();
    buffer.format(n).to_owned()
}

/// Parses a string as JavaScript's `Number(string)` does.
pub fn string_to_number(text: &str) -> f64 {
    let t = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if t.is_empty() {
        return 0.0;
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    let radix = |prefix: &[&str], base: u32| -> Option<f64> {
        let rest = prefix.iter().find_map(|p| t.strip_prefix(p))?;
        if rest.is_empty() {
            return Some(f64::NAN);
        }
        Some(u128::from_str_radix(rest, base).map_or(f64::NAN, |v| v as f64))
    };
    if let Some(v) = radix(&["0x", "0X"], 16)
        .or_else(|| radix(&["0o", "0O"], 8))
        .or_else(|| radix(&["0b", "0B"], 2))
    {
        return v;
    }
    // Rust accepts forms JavaScript does not ("inf", "nan", "1_0"); allow only JS's grammar.
    let valid = t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if !valid {
        return f64::NAN;
    }
    t.parse::<f64>().unwrap_or(f64::NAN)
}

/// JavaScript's `Date.prototype.toString()` in UTC, e.g.
/// `Mon Jan 15 2024 14:30:00 GMT+0000 (Coordinated Universal Time)`.
pub fn date_to_string(ms: f64) -> String {
    match date_from_ms(ms) {
        None => "Invalid Date".into(),
        Some(t) => t
            .format("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")
            .to_string(),
    }
}

/// `Date.prototype.toISOString()`.
pub fn date_to_iso(ms: f64) -> Option<String> {
    date_from_ms(ms).map(flowd_model::time::format_iso)
}

fn date_from_ms(ms: f64) -> Option<chrono::DateTime<chrono::Utc>> {
    if !ms.is_finite() {
        return None;
    }
    chrono::DateTime::from_timestamp_millis(ms as i64)
}

impl JsValue {
    /// `typeof`, with Losant's refinements used by the `typeof` helper: arrays, dates and `null`
    /// get their own names.
    pub fn type_name(&self) -> &'static str {
        match self {
            JsValue::Undefined => "undefined",
            JsValue::Null => "null",
            JsValue::Bool(_) => "boolean",
            JsValue::Number(_) => "number",
            JsValue::String(_) => "string",
            JsValue::Date(_) => "date",
            JsValue::Array(_) => "array",
            JsValue::Object(_) => "object",
        }
    }

    /// JavaScript truthiness: `false`, `0`, `NaN`, `""`, `null` and `undefined` are falsy;
    /// every object and array (even empty) is truthy.
    pub fn truthy(&self) -> bool {
        match self {
            JsValue::Undefined | JsValue::Null => false,
            JsValue::Bool(b) => *b,
            JsValue::Number(n) => *n != 0.0 && !n.is_nan(),
            JsValue::String(s) => !s.is_empty(),
            JsValue::Date(_) | JsValue::Array(_) | JsValue::Object(_) => true,
        }
    }

    /// `String(value)`.
    pub fn to_js_string(&self) -> String {
        match self {
            JsValue::Undefined => "undefined".into(),
            JsValue::Null => "null".into(),
            JsValue::Bool(b) => b.to_string(),
            JsValue::Number(n) => number_to_string(*n),
            JsValue::String(s) => s.clone(),
            JsValue::Date(ms) => date_to_string(*ms),
            JsValue::Array(items) => join_array(items),
            JsValue::Object(_) => "[object Object]".into(),
        }
    }

    /// How Handlebars prints a value: like `String(value)`, except that `null` and `undefined`
    /// print nothing.
    pub fn to_template_string(&self) -> String {
        match self {
            JsValue::Undefined | JsValue::Null => String::new(),
            other => other.to_js_string(),
        }
    }

    /// `Number(value)`.
    pub fn to_number(&self) -> f64 {
        match self {
            JsValue::Undefined => f64::NAN,
            JsValue::Null => 0.0,
            JsValue::Bool(b) => f64::from(u8::from(*b)),
            JsValue::Number(n) => *n,
            JsValue::String(s) => string_to_number(s),
            JsValue::Date(ms) => *ms,
            // Objects convert through their string form: [] → "" → 0, [7] → "7" → 7.
            JsValue::Array(_) | JsValue::Object(_) => string_to_number(&self.to_js_string()),
        }
    }

    /// ToPrimitive with the default hint: objects and arrays become their string form; dates
    /// become strings too (as `+` does with them).
    fn to_primitive(&self) -> JsValue {
        match self {
            JsValue::Array(_) | JsValue::Object(_) | JsValue::Date(_) => {
                JsValue::String(self.to_js_string())
            }
            other => other.clone(),
        }
    }

    /// ToPrimitive with the number hint (used by comparisons): dates compare by time.
    fn to_primitive_number(&self) -> JsValue {
        match self {
            JsValue::Date(ms) => JsValue::Number(*ms),
            other => other.to_primitive(),
        }
    }

    /// The value as JSON, as `JSON.stringify` would keep it: `None` for `undefined`.
    pub fn to_json(&self) -> Option<Value> {
        match self {
            JsValue::Undefined => None,
            JsValue::Null => Some(Value::Null),
            JsValue::Bool(b) => Some(Value::Bool(*b)),
            JsValue::Number(n) => Some(number_to_json(*n).unwrap_or(Value::Null)),
            JsValue::String(s) => Some(Value::String(s.clone())),
            JsValue::Date(ms) => Some(date_to_iso(*ms).map_or(Value::Null, Value::String)),
            JsValue::Array(items) => Some(Value::Array(items.clone())),
            JsValue::Object(map) => Some(Value::Object(map.clone())),
        }
    }
}

/// `Array.prototype.join(",")`: `null` and `undefined` elements print as empty.
fn join_array(items: &[Value]) -> String {
    items
        .iter()
        .map(|item| match item {
            Value::Null => String::new(),
            other => JsValue::from(other).to_js_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `a === b`.
pub fn strict_equals(a: &JsValue, b: &JsValue) -> bool {
    match (a, b) {
        (JsValue::Undefined, JsValue::Undefined) | (JsValue::Null, JsValue::Null) => true,
        (JsValue::Bool(x), JsValue::Bool(y)) => x == y,
        (JsValue::Number(x), JsValue::Number(y)) => x == y,
        (JsValue::String(x), JsValue::String(y)) => x == y,
        // Objects are equal only to themselves; two payload values are never the same object
        // unless they are literally the same value, which structural equality approximates.
        (JsValue::Date(x), JsValue::Date(y)) => x == y,
        (JsValue::Array(x), JsValue::Array(y)) => x == y,
        (JsValue::Object(x), JsValue::Object(y)) => x == y,
        _ => false,
    }
}

/// `a == b` (the abstract equality algorithm).
pub fn loose_equals(a: &JsValue, b: &JsValue) -> bool {
    use JsValue::*;
    match (a, b) {
        (Undefined | Null, Undefined | Null) => true,
        (Undefined | Null, _) | (_, Undefined | Null) => false,
        (Number(_), String(_)) | (String(_), Number(_)) => a.to_number() == b.to_number(),
        (Bool(_), _) => loose_equals(&Number(a.to_number()), b),
        (_, Bool(_)) => loose_equals(a, &Number(b.to_number())),
        (Array(_) | Object(_) | Date(_), Number(_) | String(_)) => {
            loose_equals(&a.to_primitive(), b)
        }
        (Number(_) | String(_), Array(_) | Object(_) | Date(_)) => {
            loose_equals(a, &b.to_primitive())
        }
        _ => strict_equals(a, b),
    }
}

/// The abstract relational comparison: `None` when either side is `NaN` (every comparison is
/// then false).
pub fn compare(a: &JsValue, b: &JsValue) -> Option<Ordering> {
    let (a, b) = (a.to_primitive_number(), b.to_primitive_number());
    if let (JsValue::String(x), JsValue::String(y)) = (&a, &b) {
        // JavaScript compares strings by UTF-16 code units.
        return Some(x.encode_utf16().cmp(y.encode_utf16()));
    }
    a.to_number().partial_cmp(&b.to_number())
}

/// `a + b`: string concatenation when either side is (or converts to) a string, else numeric
/// addition.
pub fn add(a: &JsValue, b: &JsValue) -> JsValue {
    let (a, b) = (a.to_primitive(), b.to_primitive());
    if matches!(a, JsValue::String(_)) || matches!(b, JsValue::String(_)) {
        return JsValue::String(a.to_js_string() + &b.to_js_string());
    }
    JsValue::Number(a.to_number() + b.to_number())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn js(v: Value) -> JsValue {
        JsValue::from(v)
    }

    #[test]
    fn numbers_print_like_javascript() {
        let cases = [
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1e+21"),
            (1e-7, "1e-7"),
            (123456789012345680000.0, "123456789012345680000"),
            (-0.0, "0"),
            (5.0, "5"),
            (-1.5, "-1.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (0.000001, "0.000001"),
        ];
        for (n, text) in cases {
            assert_eq!(number_to_string(n), text, "{n}");
        }
    }

    #[test]
    fn values_print_like_string_of_value() {
        assert_eq!(js(json!([1, 2, 3])).to_js_string(), "1,2,3");
        assert_eq!(js(json!([1, null, [2, 3]])).to_js_string(), "1,,2,3");
        assert_eq!(js(json!({"a": 1})).to_js_string(), "[object Object]");
        assert_eq!(js(json!(true)).to_js_string(), "true");
        assert_eq!(JsValue::Undefined.to_js_string(), "undefined");
        assert_eq!(JsValue::Null.to_template_string(), "");
        assert_eq!(
            JsValue::Date(0.0).to_js_string(),
            "Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)"
        );
    }

    #[test]
    fn numbers_from_values() {
        assert_eq!(js(json!(" 42 ")).to_number(), 42.0);
        assert_eq!(js(json!("")).to_number(), 0.0);
        assert_eq!(js(json!("0x1f")).to_number(), 31.0);
        assert!(js(json!("12px")).to_number().is_nan());
        assert!(js(json!("inf")).to_number().is_nan());
        assert_eq!(js(json!("-Infinity")).to_number(), f64::NEG_INFINITY);
        assert_eq!(js(json!("1e3")).to_number(), 1000.0);
        assert_eq!(js(json!(null)).to_number(), 0.0);
        assert!(JsValue::Undefined.to_number().is_nan());
        assert_eq!(js(json!([])).to_number(), 0.0);
        assert_eq!(js(json!([7])).to_number(), 7.0);
        assert!(js(json!([1, 2])).to_number().is_nan());
        assert!(js(json!({})).to_number().is_nan());
        assert_eq!(js(json!(true)).to_number(), 1.0);
    }

    #[test]
    fn truthiness() {
        for falsy in [json!(false), json!(0), json!(""), json!(null)] {
            assert!(!js(falsy.clone()).truthy(), "{falsy}");
        }
        for truthy in [json!([]), json!({}), json!("0"), json!("false"), json!(-1)] {
            assert!(js(truthy.clone()).truthy(), "{truthy}");
        }
        assert!(!JsValue::Number(f64::NAN).truthy());
        assert!(!JsValue::Undefined.truthy());
    }

    #[test]
    fn equality_follows_the_abstract_algorithms() {
        let eq = |a: Value, b: Value| loose_equals(&js(a), &js(b));
        assert!(eq(json!(0), json!(false)));
        assert!(eq(json!("1"), json!(1)));
        assert!(eq(json!([]), json!(false)));
        assert!(eq(json!([]), json!("")));
        assert!(eq(json!(null), json!(null)));
        assert!(loose_equals(&JsValue::Null, &JsValue::Undefined));
        assert!(!eq(json!(null), json!(0)));
        assert!(!eq(json!("a"), json!(0)));
        assert!(eq(json!([1, 2]), json!("1,2")));
        assert!(!strict_equals(&js(json!(0)), &js(json!(false))));
        assert!(!strict_equals(
            &JsValue::Number(f64::NAN),
            &JsValue::Number(f64::NAN)
        ));
        assert!(strict_equals(&js(json!("a")), &js(json!("a"))));
    }

    #[test]
    fn comparisons() {
        let cmp = |a: Value, b: Value| compare(&js(a), &js(b));
        assert_eq!(cmp(json!(42), json!("Hello world")), None);
        assert_eq!(cmp(json!("10"), json!("9")), Some(Ordering::Less));
        assert_eq!(cmp(json!("10"), json!(9)), Some(Ordering::Greater));
        assert_eq!(cmp(json!(null), json!(0)), Some(Ordering::Equal));
        assert_eq!(compare(&JsValue::Undefined, &js(json!(0))), None);
        assert_eq!(cmp(json!(true), json!(0)), Some(Ordering::Greater));
    }

    #[test]
    fn addition() {
        assert_eq!(
            add(&js(json!("5")), &js(json!(1))),
            JsValue::String("51".into())
        );
        assert_eq!(add(&js(json!(null)), &js(json!(1))), JsValue::Number(1.0));
        assert!(
            matches!(add(&JsValue::Undefined, &js(json!(1))), JsValue::Number(n) if n.is_nan())
        );
        assert_eq!(
            add(&js(json!([1, 2])), &js(json!(3))),
            JsValue::String("1,23".into())
        );
        assert_eq!(
            add(&js(json!(true)), &js(json!(true))),
            JsValue::Number(2.0)
        );
        assert_eq!(
            add(&js(json!({})), &js(json!("x"))),
            JsValue::String("[object Object]x".into())
        );
    }

    #[test]
    fn json_round_trip_rules() {
        assert_eq!(number_to_json(12.0), Some(json!(12)));
        assert_eq!(number_to_json(-0.0), Some(json!(0)));
        assert_eq!(number_to_json(1.5), Some(json!(1.5)));
        assert_eq!(number_to_json(f64::NAN), None);
        assert_eq!(JsValue::Number(f64::INFINITY).to_json(), Some(Value::Null));
        assert_eq!(JsValue::Undefined.to_json(), None);
        assert_eq!(
            JsValue::Date(0.0).to_json(),
            Some(json!("1970-01-01T00:00:00.000Z"))
        );
    }
}
