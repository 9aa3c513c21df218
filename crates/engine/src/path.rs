//! Payload paths (spec §6.1, FLOW-JSON §9.1): `data.temp`, `data.list.[0]`, `data.[odd key]`,
//! and `.` for the whole payload. Parsed once when a flow is compiled; reading and writing at
//! run time only walks the parsed segments.
//!
//! Reading follows JavaScript property access, which is what Losant's lookups do: a missing link
//! reads as `undefined` (no error), `[n]` indexes arrays and the characters of strings, and
//! `length` of an array or string is its length. Writing creates intermediate objects (and
//! replaces non-object intermediates, as lodash's `set` does).

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A plain key (`data`), also used for bracketed text that is not a number.
    Key(String),
    /// A bracketed number (`[2]`): an array index, a string position, or the key `"2"`.
    Index(usize),
}

/// A parsed payload path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadPath {
    source: String,
    segments: Vec<Segment>,
}

/// Why a path did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid payload path \"{path}\": {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: String,
}

impl fmt::Display for PayloadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PayloadPath {
    /// Parses a path. `.` is the whole payload; an empty string is refused (fields that treat
    /// "" as "the whole payload" say so themselves and do not call this).
    pub fn parse(text: &str) -> Result<PayloadPath, PathError> {
        let error = |reason: &str| PathError {
            path: text.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(error("the path is empty"));
        }
        if trimmed.contains("{{") {
            return Err(error("paths are not templates; remove the {{ }}"));
        }
        if trimmed == "." {
            return Ok(PayloadPath {
                source: trimmed.to_owned(),
                segments: Vec::new(),
            });
        }
        let mut segments = Vec::new();
        let chars: Vec<char> = trimmed.chars().collect();
        let mut i = 0;
        loop {
            if i >= chars.len() {
                return Err(error("the path ends with a dot"));
            }
            if chars[i] == '[' {
                // A bracketed segment runs to the `]` that ends the segment (followed by a dot
                // or the end), so keys may themselves contain brackets or dots.
                let start = i + 1;
                let mut end = None;
                let mut j = start;
                while j < chars.len() {
                    if chars[j] == ']' && (j + 1 == chars.len() || chars[j + 1] == '.') {
                        end = Some(j);
                        break;
                    }
                    j += 1;
                }
                let Some(end) = end else {
                    return Err(error("a [ is not closed by ]"));
                };
                let inner: String = chars[start..end].iter().collect();
                segments.push(match inner.parse::<usize>() {
                    Ok(n) if !inner.starts_with('+') => Segment::Index(n),
                    _ => Segment::Key(inner),
                });
                i = end + 1;
            } else {
                let start = i;
                while i < chars.len() && chars[i] != '.' {
                    i += 1;
                }
                let key: String = chars[start..i].iter().collect();
                if key.is_empty() {
                    return Err(error("two dots in a row"));
                }
                segments.push(Segment::Key(key));
            }
            if i >= chars.len() {
                break;
            }
            // chars[i] == '.'
            i += 1;
        }
        Ok(PayloadPath {
            source: trimmed.to_owned(),
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether this is `.`, the whole payload.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// Reads the value at the path; `None` is JavaScript's `undefined`.
    pub fn get<'a>(&self, root: &'a Value) -> Option<Cow<'a, Value>> {
        let mut current = Cow::Borrowed(root);
        for segment in &self.segments {
            current = match current {
                Cow::Borrowed(value) => step(value, segment)?,
                // Only a character or a length is ever owned, and neither has properties
                // worth walking into (except `length` of a character, which is 1).
                Cow::Owned(value) => Cow::Owned(step(&value, segment)?.into_owned()),
            };
        }
        Some(current)
    }

    /// Writes `value` at the path, creating intermediate objects. Writing to `.` replaces the
    /// whole payload.
    pub fn set(&self, root: &mut Value, value: Value) {
        let Some((last, parents)) = self.segments.split_last() else {
            *root = value;
            return;
        };
        let mut current = root;
        for segment in parents {
            current = child_mut(current, segment);
        }
        match (current, last) {
            (Value::Array(items), Segment::Index(n)) => {
                if *n >= items.len() {
                    items.resize(n + 1, Value::Null);
                }
                items[*n] = value;
            }
            (Value::Object(map), segment) => {
                map.insert(key_text(segment), value);
            }
            (other, segment) => {
                let mut map = Map::new();
                map.insert(key_text(segment), value);
                *other = Value::Object(map);
            }
        }
    }

    /// Removes the value at the path and returns it. Removing `.` empties the payload.
    pub fn remove(&self, root: &mut Value) -> Option<Value> {
        let Some((last, parents)) = self.segments.split_last() else {
            return Some(std::mem::replace(root, Value::Object(Map::new())));
        };
        let mut current = root;
        for segment in parents {
            current = match (current, segment) {
                (Value::Object(map), segment) => map.get_mut(&key_text(segment))?,
                (Value::Array(items), Segment::Index(n)) => items.get_mut(*n)?,
                _ => return None,
            };
        }
        match (current, last) {
            (Value::Object(map), segment) => map.shift_remove(&key_text(segment)),
            (Value::Array(items), Segment::Index(n)) if *n < items.len() => {
                // JavaScript's `delete arr[n]` leaves a hole; JSON has none, so null stands in.
                Some(std::mem::replace(&mut items[*n], Value::Null))
            }
            _ => None,
        }
    }
}

fn key_text(segment: &Segment) -> String {
    match segment {
        Segment::Key(key) => key.clone(),
        Segment::Index(n) => n.to_string(),
    }
}

fn step<'a>(value: &'a Value, segment: &Segment) -> Option<Cow<'a, Value>> {
    match (value, segment) {
        (Value::Object(map), segment) => map.get(&key_text(segment)).map(Cow::Borrowed),
        (Value::Array(items), Segment::Index(n)) => items.get(*n).map(Cow::Borrowed),
        (Value::Array(items), Segment::Key(key)) => match key.as_str() {
            "length" => Some(Cow::Owned(Value::from(items.len()))),
            numeric => numeric
                .parse::<usize>()
                .ok()
                .and_then(|n| items.get(n))
                .map(Cow::Borrowed),
        },
        (Value::String(text), Segment::Index(n)) => text
            .encode_utf16()
            .nth(*n)
            .map(|unit| Cow::Owned(Value::String(String::from_utf16_lossy(&[unit])))),
        (Value::String(text), Segment::Key(key)) if key == "length" => {
            Some(Cow::Owned(Value::from(text.encode_utf16().count())))
        }
        _ => None,
    }
}

fn child_mut<'a>(value: &'a mut Value, segment: &Segment) -> &'a mut Value {
    // Arrays are walked by index (growing them as lodash's `set` does); anything that is not an
    // object or array becomes an object.
    match (value, segment) {
        (Value::Array(items), Segment::Index(n)) => {
            if *n >= items.len() {
                items.resize(n + 1, Value::Object(Map::new()));
            }
            &mut items[*n]
        }
        (value, segment) => {
            if !value.is_object() {
                *value = Value::Object(Map::new());
            }
            let Value::Object(map) = value else {
                unreachable!("made an object just above")
            };
            let entry = map
                .entry(key_text(segment))
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() && !entry.is_array() {
                *entry = Value::Object(Map::new());
            }
            entry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(path: &str, root: &Value) -> Option<Value> {
        PayloadPath::parse(path)
            .unwrap()
            .get(root)
            .map(Cow::into_owned)
    }

    #[test]
    fn parses_dots_brackets_and_root() {
        assert!(PayloadPath::parse(".").unwrap().is_root());
        assert!(PayloadPath::parse("").is_err());
        assert!(PayloadPath::parse("a..b").is_err());
        assert!(PayloadPath::parse("a.").is_err());
        assert!(PayloadPath::parse("a.[b").is_err());
        assert!(PayloadPath::parse("{{data.x}}").is_err());
        let p = PayloadPath::parse("data.[my key].[0]").unwrap();
        assert_eq!(p.as_str(), "data.[my key].[0]");
    }

    #[test]
    fn reads_like_javascript() {
        let root = json!({"data": {"temp": 21.5, "list": [10, 20, 30], "s": "héllo", "my key": {"a.b": 1},
            "n": null}});
        assert_eq!(get("data.temp", &root), Some(json!(21.5)));
        assert_eq!(get("data.list.[1]", &root), Some(json!(20)));
        assert_eq!(get("data.list.1", &root), Some(json!(20)));
        assert_eq!(get("data.list.length", &root), Some(json!(3)));
        assert_eq!(get("data.s.[1]", &root), Some(json!("é")));
        assert_eq!(get("data.s.length", &root), Some(json!(5)));
        assert_eq!(get("data.[my key].[a.b]", &root), Some(json!(1)));
        assert_eq!(get("data.n", &root), Some(Value::Null));
        assert_eq!(get("data.n.x", &root), None);
        assert_eq!(get("data.missing.deeper", &root), None);
        assert_eq!(get("data.list.[9]", &root), None);
        assert_eq!(get(".", &root), Some(root.clone()));
    }

    #[test]
    fn writes_create_intermediates() {
        let mut root = json!({"data": {"x": 5}});
        PayloadPath::parse("working.a.b")
            .unwrap()
            .set(&mut root, json!(1));
        assert_eq!(root["working"], json!({"a": {"b": 1}}));
        PayloadPath::parse("data.x.y")
            .unwrap()
            .set(&mut root, json!(2));
        assert_eq!(root["data"]["x"], json!({"y": 2}));
        PayloadPath::parse("working.list.[2]")
            .unwrap()
            .set(&mut root, json!("c"));
        assert_eq!(root["working"]["list"], json!({"2": "c"}));
        let mut root = json!({"l": [1, 2]});
        PayloadPath::parse("l.[3]")
            .unwrap()
            .set(&mut root, json!(4));
        assert_eq!(root["l"], json!([1, 2, null, 4]));
        PayloadPath::parse("l.[0].k")
            .unwrap()
            .set(&mut root, json!(true));
        assert_eq!(root["l"][0], json!({"k": true}));
        PayloadPath::parse(".")
            .unwrap()
            .set(&mut root, json!({"fresh": 1}));
        assert_eq!(root, json!({"fresh": 1}));
    }

    #[test]
    fn removes() {
        let mut root = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        assert_eq!(
            PayloadPath::parse("a.b").unwrap().remove(&mut root),
            Some(json!(1))
        );
        assert_eq!(root["a"], json!({"c": 2}));
        assert_eq!(
            PayloadPath::parse("a.zz.y").unwrap().remove(&mut root),
            None
        );
        assert_eq!(
            PayloadPath::parse("l.[0]").unwrap().remove(&mut root),
            Some(json!(1))
        );
        assert_eq!(root["l"], json!([null, 2]));
    }
}
