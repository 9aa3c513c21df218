//! `StringNode`: renders `sourceData` (a string template), applies `method` with `methodArgs`
//! (each a string template) and writes the result to `resultPath`. One port; there is no
//! `errorBehavior`, so a bad argument halts the run.
//!
//! | `method` | `methodArgs` | result |
//! |---|---|---|
//! | `split` | `[delimiter]` | array of strings (JavaScript's `split`) |
//! | `replaceFirst` / `replaceAll` | `[search, replacement?]` | string |
//! | `indexOf` | `[search, fromIndex?]` | character index, `-1` when absent |
//! | `toUpper` / `toLower` | — | string |
//! | `trim` / `trimStart` / `trimEnd` | — | string (JavaScript's whitespace) |
//! | `toNumber` | — | number, or `null` when the text is not one |
//! | `concat` | `[s1, s2, …]` | string |
//! | `pad` / `padStart` / `padEnd` | `[length, fill?]` | string (lodash: `pad` centres, the extra character on the right) |
//! | `truncate` | `[length?, omission?]` | string (lodash: the omission counts toward the length) |
//!
//! Decisions:
//! * `sourceData` is required: missing or blank is a compile error, and text that renders
//!   empty halts with `TemplateError` (FLOW-JSON §7.4). Required arguments — `split`'s
//!   delimiter, the `search` of `replaceFirst`/`replaceAll`/`indexOf`, the `length` of the pad
//!   methods — follow the same rule: absent or blank in the config is a compile error, rendered
//!   empty halts with `TemplateError`. Optional arguments may render empty.
//! * Numeric arguments are read as JavaScript's `Number(text)` and truncated to an integer
//!   (lodash's `toInteger`). Text that is not a number halts with `ValidationError` (the newer
//!   revision: "the node throws"; the older one left `truncate` unchanged). Ranges: pad
//!   `length` and `indexOf`'s `fromIndex` 0–1000, `truncate`'s `length` at most 1000, where 0,
//!   a negative number or a blank argument means lodash's default of 30. Out of range halts
//!   with `ValidationError`.
//! * `toNumber` of text that is not a number stores `null`: the older revision says `null`, the
//!   newer `NaN`, and a JSON payload holds NaN as `null` either way (as the Math node does).
//!   `Infinity` is stored as `null` for the same reason.
//! * `replaceFirst`/`replaceAll` replace literally: `$&`, `$1` and `$$` in the replacement are
//!   plain text (JavaScript's `replace` would expand them). An empty replacement removes the
//!   match.
//! * Lengths and indexes count Unicode characters (code points), not JavaScript's UTF-16 units;
//!   they agree for all text outside the astral planes (emoji and the like).
//! * The pad fill may be several characters (lodash repeats and cuts it); a blank fill is a
//!   space. The `truncate` omission defaults to nothing.
//! * `methodArgs` entries may be strings or numbers (a number is its text); anything else, or a
//!   `method` this list does not hold, is a compile error naming the node.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{path, render, render_required, template};
use crate::path::PayloadPath;
use crate::template::Template;
use crate::value::{number_to_json, number_to_string, string_to_number};
use serde::Deserialize;
use serde_json::Value;

/// Longest pad, truncate length and `indexOf` start.
pub const MAX_LENGTH: f64 = 1000.0;
/// lodash's `truncate` length when none (or a non-positive one) is given.
const DEFAULT_TRUNCATE: usize = 30;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    source_data: Option<String>,
    method: Option<String>,
    method_args: Option<Vec<Value>>,
    result_path: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    Split,
    ReplaceFirst,
    ReplaceAll,
    IndexOf,
    ToUpper,
    ToLower,
    Trim,
    TrimStart,
    TrimEnd,
    ToNumber,
    Concat,
    Pad,
    PadStart,
    PadEnd,
    Truncate,
}

impl Method {
    fn parse(name: &str) -> Option<Method> {
        Some(match name {
            "split" => Method::Split,
            "replaceFirst" => Method::ReplaceFirst,
            "replaceAll" => Method::ReplaceAll,
            "indexOf" => Method::IndexOf,
            "toUpper" => Method::ToUpper,
            "toLower" => Method::ToLower,
            "trim" => Method::Trim,
            "trimStart" => Method::TrimStart,
            "trimEnd" => Method::TrimEnd,
            "toNumber" => Method::ToNumber,
            "concat" => Method::Concat,
            "pad" => Method::Pad,
            "padStart" => Method::PadStart,
            "padEnd" => Method::PadEnd,
            "truncate" => Method::Truncate,
            _ => return None,
        })
    }

    /// Names of the arguments that must be given (in order, at the front).
    fn required_args(self) -> &'static [&'static str] {
        match self {
            Method::Split => &["delimiter"],
            Method::ReplaceFirst | Method::ReplaceAll | Method::IndexOf => &["search"],
            Method::Pad | Method::PadStart | Method::PadEnd => &["length"],
            _ => &[],
        }
    }
}

const METHOD_NAMES: &str = "split, replaceFirst, replaceAll, indexOf, toUpper, toLower, trim, \
    trimStart, trimEnd, toNumber, concat, pad, padStart, padEnd, truncate";

pub struct StringOp {
    source: Template,
    method: Method,
    args: Vec<Template>,
    result: PayloadPath,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let source = match config.source_data.as_deref() {
        Some(text) if !text.is_empty() => template(spec, "sourceData", text)?,
        _ => return Err(spec.error("sourceData is required")),
    };
    let method = match config.method.as_deref().map(str::trim) {
        None | Some("") => return Err(spec.error("method is required")),
        Some(name) => Method::parse(name).ok_or_else(|| {
            spec.error(format!(
                "method must be one of {METHOD_NAMES}, not \"{name}\""
            ))
        })?,
    };
    let mut args = Vec::new();
    for (i, arg) in config.method_args.unwrap_or_default().iter().enumerate() {
        let field = format!("methodArgs[{i}]");
        let text = match arg {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Null => String::new(),
            other => {
                return Err(spec.error(format!("{field} must be a string template, not {other}")))
            }
        };
        args.push(template(spec, &field, &text)?);
    }
    for (i, name) in method.required_args().iter().enumerate() {
        if args.get(i).is_none_or(|t| t.source().is_empty()) {
            return Err(spec.error(format!(
                "methodArgs[{i}] ({name}) is required for {}",
                config.method.as_deref().unwrap_or_default().trim()
            )));
        }
    }
    let result = match config.result_path.as_deref() {
        Some(text) if !text.trim().is_empty() => path(spec, "resultPath", text)?,
        _ => return Err(spec.error("resultPath is required")),
    };
    Ok(CompiledNodeType::new(
        StringOp {
            source,
            method,
            args,
            result,
        },
        1,
    ))
}

fn invalid(message: String) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

/// JavaScript's `WhiteSpace` and `LineTerminator` characters (what `trim` removes).
pub(crate) fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// A numeric argument: `Number(text)` truncated toward zero; `None` when blank.
fn integer_arg(text: &str, name: &str) -> Result<Option<f64>, NodeError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let n = string_to_number(text);
    if n.is_nan() {
        return Err(invalid(format!("{name} \"{text}\" is not a number")));
    }
    Ok(Some(n.trunc()))
}

/// A length in 0–1000.
fn length_arg(text: &str, name: &str) -> Result<usize, NodeError> {
    match integer_arg(text, name)? {
        Some(n) if (0.0..=MAX_LENGTH).contains(&n) => Ok(n as usize),
        Some(n) => Err(invalid(format!(
            "{name} must be between 0 and {MAX_LENGTH}, not {}",
            number_to_string(n)
        ))),
        None => Ok(0),
    }
}

/// lodash's `createPadding`: `chars` repeated and cut to `length` characters.
fn padding(length: usize, chars: &str) -> String {
    chars.chars().cycle().take(length).collect()
}

/// lodash's `pad`, `padStart` and `padEnd`.
fn pad(text: &str, length: usize, fill: &str, method: Method) -> String {
    let size = text.chars().count();
    if length <= size {
        return text.to_owned();
    }
    let missing = length - size;
    match method {
        Method::PadStart => padding(missing, fill) + text,
        Method::PadEnd => text.to_owned() + &padding(missing, fill),
        _ => {
            let left = missing / 2;
            padding(left, fill) + text + &padding(missing - left, fill)
        }
    }
}

/// lodash's `truncate` (without `separator`).
fn truncate(text: &str, length: usize, omission: &str) -> String {
    if text.chars().count() <= length {
        return text.to_owned();
    }
    let keep = length.saturating_sub(omission.chars().count());
    if keep < 1 {
        return omission.to_owned();
    }
    text.chars().take(keep).collect::<String>() + omission
}

/// JavaScript's `indexOf(search, from)`, counted in characters.
fn index_of(text: &str, search: &str, from: usize) -> i64 {
    let chars: Vec<char> = text.chars().collect();
    let needle: Vec<char> = search.chars().collect();
    let from = from.min(chars.len());
    if needle.is_empty() {
        return from as i64;
    }
    chars[from..]
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .map_or(-1, |i| (i + from) as i64)
}

impl StringOp {
    /// Renders argument `i`; an argument not given renders empty.
    fn arg(&self, i: usize, payload: &Value) -> Result<String, NodeError> {
        match self.args.get(i) {
            Some(t) => render(t, payload),
            None => Ok(String::new()),
        }
    }

    /// Renders a required argument: empty halts with `TemplateError`.
    fn required_arg(&self, i: usize, name: &str, payload: &Value) -> Result<String, NodeError> {
        match self.args.get(i) {
            Some(t) => render_required(t, &format!("methodArgs[{i}] ({name})"), payload),
            None => Err(NodeError::new(
                ErrorName::TemplateError,
                format!("methodArgs[{i}] ({name}) is required"),
            )),
        }
    }

    fn apply(&self, text: &str, payload: &Value) -> Result<Value, NodeError> {
        Ok(match self.method {
            Method::Split => {
                let delimiter = self.required_arg(0, "delimiter", payload)?;
                Value::Array(
                    text.split(delimiter.as_str())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                )
            }
            Method::ReplaceFirst | Method::ReplaceAll => {
                let search = self.required_arg(0, "search", payload)?;
                let replacement = self.arg(1, payload)?;
                Value::String(if self.method == Method::ReplaceFirst {
                    text.replacen(search.as_str(), &replacement, 1)
                } else {
                    text.replace(search.as_str(), &replacement)
                })
            }
            Method::IndexOf => {
                let search = self.required_arg(0, "search", payload)?;
                let from = length_arg(&self.arg(1, payload)?, "fromIndex")?;
                Value::from(index_of(text, &search, from))
            }
            Method::ToUpper => Value::String(text.to_uppercase()),
            Method::ToLower => Value::String(text.to_lowercase()),
            Method::Trim => Value::String(text.trim_matches(is_js_whitespace).to_owned()),
            Method::TrimStart => {
                Value::String(text.trim_start_matches(is_js_whitespace).to_owned())
            }
            Method::TrimEnd => Value::String(text.trim_end_matches(is_js_whitespace).to_owned()),
            Method::ToNumber => number_to_json(string_to_number(text)).unwrap_or(Value::Null),
            Method::Concat => {
                let mut out = text.to_owned();
                for i in 0..self.args.len() {
                    out.push_str(&self.arg(i, payload)?);
                }
                Value::String(out)
            }
            Method::Pad | Method::PadStart | Method::PadEnd => {
                let length = length_arg(&self.required_arg(0, "length", payload)?, "length")?;
                let fill = self.arg(1, payload)?;
                let fill = if fill.is_empty() { " " } else { fill.as_str() };
                Value::String(pad(text, length, fill, self.method))
            }
            Method::Truncate => {
                let length = match integer_arg(&self.arg(0, payload)?, "length")? {
                    None => DEFAULT_TRUNCATE,
                    Some(n) if n <= 0.0 => DEFAULT_TRUNCATE,
                    Some(n) if n <= MAX_LENGTH => n as usize,
                    Some(n) => {
                        return Err(invalid(format!(
                            "length must be at most {MAX_LENGTH}, not {}",
                            number_to_string(n)
                        )))
                    }
                };
                let omission = self.arg(1, payload)?;
                Value::String(truncate(text, length, &omission))
            }
        })
    }
}

impl Node for StringOp {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let text = render_required(&self.source, "sourceData", payload)?;
        let value = self.apply(&text, payload)?;
        self.result.set(payload, value);
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn string(source: &str, method: &str, args: Value) -> Value {
        let config = json!({"sourceData": source, "method": method, "methodArgs": args,
            "resultPath": "working.out"});
        let (port, payload) = run_node("StringNode", &config, payload()).unwrap();
        assert_eq!(port, 0);
        payload["working"]["out"].clone()
    }

    fn fails(source: &str, method: &str, args: Value) -> crate::error::NodeError {
        let config = json!({"sourceData": source, "method": method, "methodArgs": args,
            "resultPath": "working.out"});
        run_node("StringNode", &config, payload()).unwrap_err()
    }

    fn payload() -> Value {
        json!({"data": {"line": "a;b;;c", "name": "  Ada Lovelace \n", "n": "42.5",
            "sep": ";", "empty": "", "len": 8, "word": "hello", "bad": "%"}})
    }

    #[test]
    fn split() {
        assert_eq!(
            string("{{data.line}}", "split", json!([";"])),
            json!(["a", "b", "", "c"])
        );
        assert_eq!(
            string("{{data.line}}", "split", json!(["{{data.sep}}"])),
            json!(["a", "b", "", "c"])
        );
        assert_eq!(string("abc", "split", json!(["x"])), json!(["abc"]));
        assert_eq!(string("a, b", "split", json!([", "])), json!(["a", "b"]));
    }

    #[test]
    fn replace() {
        assert_eq!(
            string("a-b-c", "replaceFirst", json!(["-", "+"])),
            json!("a+b-c")
        );
        assert_eq!(
            string("a-b-c", "replaceAll", json!(["-", "+"])),
            json!("a+b+c")
        );
        // A blank replacement removes; `$&` is literal.
        assert_eq!(
            string("a-b-c", "replaceAll", json!(["-", ""])),
            json!("abc")
        );
        assert_eq!(string("a-b-c", "replaceAll", json!(["-"])), json!("abc"));
        assert_eq!(
            string("a-b", "replaceFirst", json!(["-", "$&$$"])),
            json!("a$&$$b")
        );
        assert_eq!(string("abc", "replaceAll", json!(["x", "y"])), json!("abc"));
    }

    #[test]
    fn index_of() {
        assert_eq!(string("hello world", "indexOf", json!(["o"])), json!(4));
        assert_eq!(
            string("hello world", "indexOf", json!(["o", "5"])),
            json!(7)
        );
        assert_eq!(string("hello world", "indexOf", json!(["z"])), json!(-1));
        assert_eq!(string("héllo", "indexOf", json!(["l"])), json!(2));
        assert_eq!(string("abc", "indexOf", json!(["c", "999"])), json!(-1));
        assert_eq!(
            fails("abc", "indexOf", json!(["a", "1001"])).name,
            ErrorName::ValidationError
        );
        assert_eq!(
            fails("abc", "indexOf", json!(["a", "-1"])).name,
            ErrorName::ValidationError
        );
    }

    #[test]
    fn case_and_trim() {
        assert_eq!(string("Straße", "toUpper", json!([])), json!("STRASSE"));
        assert_eq!(string("ÀBC", "toLower", json!([])), json!("àbc"));
        assert_eq!(
            string("{{data.name}}", "trim", json!([])),
            json!("Ada Lovelace")
        );
        assert_eq!(
            string("{{data.name}}", "trimStart", json!([])),
            json!("Ada Lovelace \n")
        );
        assert_eq!(
            string("{{data.name}}", "trimEnd", json!([])),
            json!("  Ada Lovelace")
        );
        assert_eq!(
            string("\u{feff}\u{a0}x\u{2028}", "trim", json!(null)),
            json!("x")
        );
    }

    #[test]
    fn to_number() {
        assert_eq!(string("{{data.n}}", "toNumber", json!([])), json!(42.5));
        assert_eq!(string(" 0x1f ", "toNumber", json!([])), json!(31));
        assert_eq!(string("12px", "toNumber", json!([])), Value::Null);
        assert_eq!(string("Infinity", "toNumber", json!([])), Value::Null);
        assert_eq!(string("-7", "toNumber", json!([])), json!(-7));
    }

    #[test]
    fn concat() {
        assert_eq!(
            string("a", "concat", json!(["b", "{{data.word}}", "", 3])),
            json!("abhello3")
        );
        assert_eq!(string("a", "concat", json!([])), json!("a"));
    }

    #[test]
    fn pad() {
        assert_eq!(string("abc", "pad", json!(["8"])), json!("  abc   "));
        assert_eq!(string("abc", "pad", json!([8, "_-"])), json!("_-abc_-_"));
        assert_eq!(
            string("abc", "padStart", json!(["6", "0"])),
            json!("000abc")
        );
        assert_eq!(
            string("abc", "padEnd", json!(["{{data.len}}", "."])),
            json!("abc.....")
        );
        assert_eq!(string("abc", "padStart", json!(["2"])), json!("abc"));
        assert_eq!(string("abc", "padStart", json!(["5", ""])), json!("  abc"));
        assert_eq!(string("abc", "padEnd", json!(["4.9"])), json!("abc "));
        for bad in ["1001", "-1", "many"] {
            let e = fails("abc", "pad", json!([bad]));
            assert_eq!(e.name, ErrorName::ValidationError, "{bad}");
        }
        // A required argument that renders empty is a template failure.
        assert_eq!(
            fails("abc", "pad", json!(["{{data.empty}}"])).name,
            ErrorName::TemplateError
        );
    }

    #[test]
    fn truncate() {
        let long = "The quick brown fox jumps over the lazy dog";
        assert_eq!(
            string(long, "truncate", json!(["10", "..."])),
            json!("The qui...")
        );
        assert_eq!(string(long, "truncate", json!(["10"])), json!("The quick "));
        assert_eq!(
            string("short", "truncate", json!(["10", "…"])),
            json!("short")
        );
        // ≤ 0 or blank: lodash's 30.
        let thirty = json!("The quick brown fox jumps over");
        assert_eq!(string(long, "truncate", json!(["0"])), thirty);
        assert_eq!(string(long, "truncate", json!(["-4"])), thirty);
        assert_eq!(string(long, "truncate", json!([])), thirty);
        // An omission longer than the length is all that is left.
        assert_eq!(string(long, "truncate", json!(["2", "..."])), json!("..."));
        assert_eq!(
            fails(long, "truncate", json!(["ten"])).name,
            ErrorName::ValidationError
        );
        assert_eq!(
            fails(long, "truncate", json!(["1001"])).name,
            ErrorName::ValidationError
        );
    }

    #[test]
    fn empty_source_and_required_arguments_halt() {
        let e = fails("{{data.empty}}", "trim", json!([]));
        assert_eq!(e.name, ErrorName::TemplateError);
        let e = fails("{{data.missing}}", "toUpper", json!([]));
        assert_eq!(e.name, ErrorName::TemplateError);
        let e = fails("abc", "split", json!(["{{data.empty}}"]));
        assert_eq!(e.name, ErrorName::TemplateError);
        let e = fails("abc", "replaceAll", json!(["{{data.missing}}", "x"]));
        assert_eq!(e.name, ErrorName::TemplateError);
        let e = fails("abc", "concat", json!(["{{decodeURIComponent data.bad}}"]));
        assert_eq!(e.name, ErrorName::TemplateError, "{e}");
    }

    #[test]
    fn result_path_receives_the_value_and_overwrites() {
        let config = json!({"sourceData": "{{data.s}}", "method": "toUpper",
            "resultPath": "data.s"});
        let (_, payload) = run_node("StringNode", &config, json!({"data": {"s": "abc"}})).unwrap();
        assert_eq!(payload, json!({"data": {"s": "ABC"}}));
    }

    #[test]
    fn config_is_checked() {
        let ok = json!({"sourceData": "x", "method": "trim", "resultPath": "w.x", "extra": 1});
        assert_eq!(compile_node("StringNode", &ok).unwrap().ports, 1);
        for bad in [
            json!({"method": "trim", "resultPath": "w.x"}),
            json!({"sourceData": "", "method": "trim", "resultPath": "w.x"}),
            json!({"sourceData": "x", "resultPath": "w.x"}),
            json!({"sourceData": "x", "method": "reverse", "resultPath": "w.x"}),
            json!({"sourceData": "x", "method": "trim"}),
            json!({"sourceData": "x", "method": "trim", "resultPath": "{{w}}"}),
            json!({"sourceData": "{{#if}}", "method": "trim", "resultPath": "w.x"}),
            json!({"sourceData": "x", "method": "split", "resultPath": "w.x"}),
            json!({"sourceData": "x", "method": "split", "methodArgs": [""], "resultPath": "w.x"}),
            json!({"sourceData": "x", "method": "replaceAll", "methodArgs": [], "resultPath": "w.x"}),
            json!({"sourceData": "x", "method": "padStart", "resultPath": "w.x"}),
            json!({"sourceData": "x", "method": "concat", "methodArgs": [{"a": 1}], "resultPath": "w.x"}),
            json!({"sourceData": "x", "method": "concat", "methodArgs": "a", "resultPath": "w.x"}),
            json!({"sourceData": 5, "method": "trim", "resultPath": "w.x"}),
        ] {
            let error = compile_node("StringNode", &bad).err().expect("refused");
            assert!(error.0.contains("(StringNode)"), "{bad}: {error}");
        }
    }
}
