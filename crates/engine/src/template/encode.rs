//! Text encodings with JavaScript's exact rules: HTML escaping as Handlebars does it,
//! `JSON.stringify`, `encodeURI(Component)`/`decodeURI(Component)`, Node's `Buffer` base64 and
//! `querystring.stringify`.

use crate::value::{number_to_string, JsValue};
use serde_json::Value;

/// Handlebars.js's `escapeExpression`: `& < > " ' \` =`.
pub fn escape_html_into(out: &mut String, text: &str) {
    let mut last = 0;
    for (i, b) in text.bytes().enumerate() {
        let replacement = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            b'`' => "&#x60;",
            b'=' => "&#x3D;",
            _ => continue,
        };
        out.push_str(&text[last..i]);
        out.push_str(replacement);
        last = i + 1;
    }
    out.push_str(&text[last..]);
}

// ---------------------------------------------------------------------------------------------
// JSON.stringify

/// `JSON.stringify(value, null, indent)`; `None` for `undefined` (JSON.stringify returns
/// undefined). `indent` is the gap string (at most 10 characters, as JavaScript clamps it).
pub fn json_stringify(value: &JsValue, indent: &str) -> Option<String> {
    let mut out = String::new();
    match value {
        JsValue::Undefined => return None,
        JsValue::Null => out.push_str("null"),
        JsValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        JsValue::Number(n) => out.push_str(&json_number(*n)),
        JsValue::String(s) => json_quote_into(&mut out, s),
        JsValue::Date(_) => {
            let v = value.to_json().unwrap_or(Value::Null);
            write_json(&mut out, &v, indent, 0);
        }
        JsValue::Array(items) => write_array(&mut out, items, indent, 0),
        JsValue::Object(map) => write_object(&mut out, map, indent, 0),
    }
    Some(out)
}

/// `JSON.stringify` of a JSON value (compact).
pub fn json_compact(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value, "", 0);
    out
}

fn json_number(n: f64) -> String {
    if n.is_finite() {
        number_to_string(n)
    } else {
        "null".into()
    }
}

fn write_json(out: &mut String, value: &Value, indent: &str, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                out.push_str(&json_number(n.as_f64().unwrap_or(f64::NAN)));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => json_quote_into(out, s),
        Value::Array(items) => write_array(out, items, indent, depth),
        Value::Object(map) => write_object(out, map, indent, depth),
    }
}

fn newline(out: &mut String, indent: &str, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str(indent);
    }
}

fn write_array(out: &mut String, items: &[Value], indent: &str, depth: usize) {
    if items.is_empty() {
        out.push_str("[]");
        return;
    }
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if !indent.is_empty() {
            newline(out, indent, depth + 1);
        }
        write_json(out, item, indent, depth + 1);
    }
    if !indent.is_empty() {
        newline(out, indent, depth);
    }
    out.push(']');
}

fn write_object(
    out: &mut String,
    map: &serde_json::Map<String, Value>,
    indent: &str,
    depth: usize,
) {
    if map.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (key, item)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if !indent.is_empty() {
            newline(out, indent, depth + 1);
        }
        json_quote_into(out, key);
        out.push(':');
        if !indent.is_empty() {
            out.push(' ');
        }
        write_json(out, item, indent, depth + 1);
    }
    if !indent.is_empty() {
        newline(out, indent, depth);
    }
    out.push('}');
}

/// JSON's quoting as `JSON.stringify` does it.
pub fn json_quote_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// URI encoding

const URI_COMPONENT_UNESCAPED: &str = "-_.!~*'()";
const URI_RESERVED: &str = ";/?:@&=+$,#";

fn encode(text: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || keep(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// `encodeURIComponent`.
pub fn encode_uri_component(text: &str) -> String {
    encode(text, |c| URI_COMPONENT_UNESCAPED.contains(c))
}

/// `encodeURI`.
pub fn encode_uri(text: &str) -> String {
    encode(text, |c| {
        URI_COMPONENT_UNESCAPED.contains(c) || URI_RESERVED.contains(c)
    })
}

/// `decodeURIComponent` / `decodeURI` (`keep` lists the characters whose escapes stay as
/// written). Malformed input is JavaScript's `URIError: URI malformed`.
fn decode(text: &str, keep: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let malformed = || "URI malformed".to_owned();
    let hex = |i: usize| -> Option<u8> {
        let h = bytes.get(i..i + 2)?;
        u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let first = hex(i + 1).ok_or_else(malformed)?;
        if first < 0x80 {
            let c = first as char;
            if keep.contains(c) {
                out.push_str(&text[i..i + 3]);
            } else {
                out.push(c);
            }
            i += 3;
            continue;
        }
        let len = match first {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return Err(malformed()),
        };
        let mut buf = vec![first];
        for k in 1..len {
            let at = i + 3 * k;
            if bytes.get(at) != Some(&b'%') {
                return Err(malformed());
            }
            buf.push(hex(at + 1).ok_or_else(malformed)?);
        }
        let s = std::str::from_utf8(&buf).map_err(|_| malformed())?;
        out.push_str(s);
        i += 3 * len;
    }
    Ok(out)
}

/// `decodeURIComponent`.
pub fn decode_uri_component(text: &str) -> Result<String, String> {
    decode(text, "")
}

/// `decodeURI`: escapes of reserved characters stay escaped.
pub fn decode_uri(text: &str) -> Result<String, String> {
    decode(text, URI_RESERVED)
}

// ---------------------------------------------------------------------------------------------
// Base64 (Node's Buffer)

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `Buffer.from(text).toString('base64')`.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `Buffer.from(text, 'base64')`: lenient like Node (URL-safe letters accepted, other
/// characters skipped, decoding stops at `=`).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// querystring.stringify

fn query_escape(text: &str) -> String {
    encode_uri_component(text)
}

fn query_primitive(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => JsValue::from(value).to_js_string(),
        _ => String::new(),
    }
}

/// Node's `querystring.stringify(object)`: arrays repeat the key, other non-primitive values
/// are empty.
pub fn query_string(map: &serde_json::Map<String, Value>) -> String {
    let mut parts = Vec::new();
    for (key, value) in map {
        let k = query_escape(key);
        match value {
            Value::Array(items) => {
                for item in items {
                    parts.push(format!("{k}={}", query_escape(&query_primitive(item))));
                }
            }
            other => parts.push(format!("{k}={}", query_escape(&query_primitive(other)))),
        }
    }
    parts.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uri() {
        assert_eq!(encode_uri_component("a b/c?é"), "a%20b%2Fc%3F%C3%A9");
        assert_eq!(encode_uri("http://h/a b?x=1#f"), "http://h/a%20b?x=1#f");
        assert_eq!(decode_uri_component("a%20b%2F%C3%A9").unwrap(), "a b/é");
        assert_eq!(decode_uri("a%20b%2F").unwrap(), "a b%2F");
        assert!(decode_uri_component("%E0%A4%A").is_err());
        assert!(decode_uri_component("%zz").is_err());
    }

    #[test]
    fn base64() {
        assert_eq!(base64_encode(b"hi"), "aGk=");
        assert_eq!(base64_encode(b"hello!"), "aGVsbG8h");
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_decode("aGk="), b"hi");
        assert_eq!(base64_decode("aGk"), b"hi");
        assert_eq!(base64_decode("aGVs bG8h"), b"hello!");
        assert_eq!(base64_decode("-_8"), vec![0xfb, 0xff]);
    }

    #[test]
    fn stringify() {
        let v = JsValue::from(json!({"a": [1, 2.5, "x\n"], "b": {}, "c": null}));
        assert_eq!(
            json_stringify(&v, "").unwrap(),
            r#"{"a":[1,2.5,"x\n"],"b":{},"c":null}"#
        );
        assert_eq!(
            json_stringify(&v, "  ").unwrap(),
            "{\n  \"a\": [\n    1,\n    2.5,\n    \"x\\n\"\n  ],\n  \"b\": {},\n  \"c\": null\n}"
        );
        assert_eq!(json_stringify(&JsValue::Undefined, ""), None);
        assert_eq!(
            json_stringify(&JsValue::Number(f64::NAN), "").unwrap(),
            "null"
        );
        assert_eq!(json_compact(&json!(1e21)), "1e+21");
        assert_eq!(json_compact(&json!(3.0)), "3");
    }

    #[test]
    fn query() {
        let m = json!({"a": 1, "b": "x y", "c": [1, 2], "d": {"e": 1}, "f": true});
        assert_eq!(
            query_string(m.as_object().unwrap()),
            "a=1&b=x%20y&c=1&c=2&d=&f=true"
        );
    }
}
