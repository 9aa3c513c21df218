//! `CSVEncodeNode` ("CSV: Encode"): writes the array of objects at `source` as CSV text to
//! `destination`: a header row, then one record per item, each ended by the record delimiter
//! (`"Food,Drink\nBurger,Soda\nTaco,Water\n"`). One port.
//!
//! Columns (`headerTemplateType`):
//! * `objectKeys` (the default): the keys of the **first** object;
//! * `stringTemplates`: `headerTemplate` is a list of at most [`MAX_HEADER_TEMPLATES`] string
//!   templates (one string is a list of one), each rendering one column name; blank ones are
//!   skipped;
//! * `payloadPath`: `headerTemplate` is a payload path to an array of column names (a single
//!   string is one column).
//!
//! Only the chosen columns are written, in that order; an item without a column leaves its
//! cell empty. The format fields are those of `CSVDecodeNode` (see there): delimiter, record
//! delimiter, quote and escape, each a template.
//!
//! **Failures do not halt**: a source that is not an array, an item that is neither an object
//! nor an array, column names that are not there, or a format setting that renders unusable
//! writes `{"error": {"message": …}}` to `destination` and the path continues. A template that
//! fails to render halts with `TemplateError`.
//!
//! Decisions (following `csv-stringify`, which Losant's option names and trailing record
//! delimiter come from):
//! * Cells: text as is; numbers as JavaScript prints them; `true` as `1` and `false` as an
//!   empty cell (csv-stringify's default cast); objects and arrays as compact JSON; `null` and
//!   missing values empty. A column name with dots that is not a key itself reads the nested
//!   value (`address.city`), as csv-stringify does.
//! * A cell is quoted when it holds the delimiter, the quote, the record delimiter or a line
//!   break; quotes inside are preceded by the escape character (doubled with the default `"`),
//!   and when the escape differs from the quote, escape characters inside quoted cells are
//!   doubled. Headers are quoted the same way.
//! * An item that is an array fills the columns by position.
//! * An empty array with `objectKeys` gives empty text; with explicit columns, the header row.
//! * The delimiter, quote and escape may be any single character; the record delimiter any
//!   text. `\n`, `\r`, `\t` and `\\` typed as two characters stand for the character.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::logic::csv_decode::{
    error_value, required_path, Direction, Format, FormatConfig, FormatTemplates,
};
use crate::nodes::{path, render, template};
use crate::path::PayloadPath;
use crate::template::encode::json_compact;
use crate::template::Template;
use crate::value::JsValue;
use serde::Deserialize;
use serde_json::Value;

/// Most header templates (`stringTemplates`).
pub const MAX_HEADER_TEMPLATES: usize = 10;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    source: Option<String>,
    destination: Option<String>,
    #[serde(flatten)]
    format: FormatConfig,
    header_template_type: Option<String>,
    header_template: Option<Value>,
}

enum Headers {
    ObjectKeys,
    Templates(Vec<Template>),
    Path(PayloadPath),
}

pub struct CsvEncode {
    source: PayloadPath,
    destination: PayloadPath,
    format: FormatTemplates,
    headers: Headers,
}

fn compile_headers(spec: &NodeSpec<'_>, config: &Config) -> Result<Headers, CompileError> {
    let texts: Vec<String> = match &config.header_template {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(spec.error(format!(
                    "headerTemplate[{i}] must be a string template, not {other}"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(spec.error(format!(
                "headerTemplate must be a string or a list of strings, not {other}"
            )))
        }
    };
    match config.header_template_type.as_deref().map(str::trim) {
        None | Some("") | Some("objectKeys") => Ok(Headers::ObjectKeys),
        Some("stringTemplates") => {
            let texts: Vec<&String> = texts.iter().filter(|t| !t.trim().is_empty()).collect();
            if texts.is_empty() {
                return Err(spec.error("headerTemplate is required for stringTemplates"));
            }
            if texts.len() > MAX_HEADER_TEMPLATES {
                return Err(spec.error(format!(
                    "headerTemplate has {} templates; at most {MAX_HEADER_TEMPLATES}",
                    texts.len()
                )));
            }
            texts
                .iter()
                .enumerate()
                .map(|(i, text)| template(spec, &format!("headerTemplate[{i}]"), text))
                .collect::<Result<_, _>>()
                .map(Headers::Templates)
        }
        Some("payloadPath") => match texts.as_slice() {
            [text] if !text.trim().is_empty() => {
                Ok(Headers::Path(path(spec, "headerTemplate", text)?))
            }
            _ => Err(spec.error("headerTemplate must be one payload path for payloadPath")),
        },
        Some(other) => Err(spec.error(format!(
            "headerTemplateType must be objectKeys, stringTemplates or payloadPath, not \"{other}\""
        ))),
    }
}

/// The fields this node knows (the format fields are flattened into `Config`).
pub(crate) fn config_fields() -> Vec<&'static str> {
    let mut fields = vec![
        "source",
        "destination",
        "headerTemplateType",
        "headerTemplate",
    ];
    fields.extend(crate::node::config_fields::<FormatConfig>());
    fields
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    Ok(CompiledNodeType::new(
        CsvEncode {
            source: required_path(spec, "source", config.source.as_deref())?,
            destination: required_path(spec, "destination", config.destination.as_deref())?,
            format: FormatTemplates::compile(spec, &config.format, Direction::Encode)?,
            headers: compile_headers(spec, &config)?,
        },
        1,
    ))
}

/// A cell's text, as csv-stringify casts it.
fn cell_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => "1".into(),
        Some(Value::Bool(false)) => String::new(),
        Some(v @ Value::Number(_)) => JsValue::from(v).to_js_string(),
        Some(v) => json_compact(v),
    }
}

/// Quotes and escapes a field as csv-stringify does.
fn field(text: &str, format: &Format) -> String {
    let Format {
        delimiter,
        record,
        quote,
        escape,
    } = format;
    let has_quote = text.contains(*quote);
    let should_quote = has_quote
        || text.contains(*delimiter)
        || text.contains(record.as_str())
        || text.contains(['\n', '\r']);
    if !should_quote {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push(*quote);
    for c in text.chars() {
        // A quote is escaped; so is the escape character itself when it is not the quote.
        if c == *quote || c == *escape {
            out.push(*escape);
        }
        out.push(c);
    }
    out.push(*quote);
    out
}

/// Reads a column from an object: the key itself, else a dotted path.
fn column<'a>(row: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = row.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut current = row.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Encodes rows under the given columns.
pub(crate) fn encode(
    rows: &[Value],
    columns: &[String],
    format: &Format,
) -> Result<String, String> {
    let mut out = String::new();
    if columns.is_empty() && rows.is_empty() {
        return Ok(out);
    }
    let line = |cells: Vec<String>, out: &mut String| {
        let delimiter = format.delimiter.to_string();
        out.push_str(
            &cells
                .iter()
                .map(|c| field(c, format))
                .collect::<Vec<_>>()
                .join(&delimiter),
        );
        out.push_str(&format.record);
    };
    line(columns.to_vec(), &mut out);
    for (i, row) in rows.iter().enumerate() {
        let cells = match row {
            Value::Object(map) => columns.iter().map(|c| cell_text(column(map, c))).collect(),
            Value::Array(items) => (0..columns.len())
                .map(|k| cell_text(items.get(k)))
                .collect(),
            other => {
                return Err(format!(
                    "item {i} is {}, not an object",
                    JsValue::from(other).type_name()
                ))
            }
        };
        line(cells, &mut out);
    }
    Ok(out)
}

impl CsvEncode {
    fn columns(
        &self,
        rows: &[Value],
        payload: &Value,
    ) -> Result<Result<Vec<String>, String>, NodeError> {
        Ok(match &self.headers {
            Headers::ObjectKeys => match rows.first() {
                None => Ok(Vec::new()),
                Some(Value::Object(map)) => Ok(map.keys().cloned().collect()),
                Some(other) => Err(format!(
                    "item 0 is {}, not an object whose keys could be the columns",
                    JsValue::from(other).type_name()
                )),
            },
            Headers::Templates(templates) => {
                let mut names = Vec::new();
                for t in templates {
                    let name = render(t, payload)?;
                    if !name.trim().is_empty() {
                        names.push(name);
                    }
                }
                Ok(names)
            }
            Headers::Path(path) => match path.get(payload).as_deref() {
                Some(Value::Array(items)) => Ok(items
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(|v| JsValue::from(v).to_js_string())
                    .collect()),
                Some(Value::String(name)) => Ok(vec![name.clone()]),
                other => Err(format!(
                    "headerTemplate {path} is {}, not an array of column names",
                    JsValue::from(other).type_name()
                )),
            },
        })
    }

    fn text(&self, payload: &Value) -> Result<Result<String, String>, NodeError> {
        let format = match self.format.resolve(payload)? {
            Ok(format) => format,
            Err(message) => return Ok(Err(message)),
        };
        let rows = match self.source.get(payload).as_deref() {
            Some(Value::Array(rows)) => rows.clone(),
            other => {
                return Ok(Err(format!(
                    "{} is {}, not an array of objects",
                    self.source,
                    JsValue::from(other).type_name()
                )))
            }
        };
        let columns = match self.columns(&rows, payload)? {
            Ok(columns) => columns,
            Err(message) => return Ok(Err(message)),
        };
        Ok(encode(&rows, &columns, &format))
    }
}

impl Node for CsvEncode {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let value = match self.text(payload)? {
            Ok(text) => Value::String(text),
            Err(message) => error_value(message),
        };
        self.destination.set(payload, value);
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn encode(extra: Value, rows: Value) -> Value {
        let mut config = json!({"source": "data.rows", "destination": "working.csv"});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        let payload = json!({"data": {"rows": rows, "cols": ["b", "a"], "h": "Drink"}});
        let (port, after) = run_node("CSVEncodeNode", &config, payload).unwrap();
        assert_eq!(port, 0);
        after["working"]["csv"].clone()
    }

    #[test]
    fn the_documented_example() {
        let rows = json!([{"Food": "Burger", "Drink": "Soda"}, {"Food": "Taco", "Drink": "Water"}]);
        assert_eq!(
            encode(json!({}), rows.clone()),
            json!("Food,Drink\nBurger,Soda\nTaco,Water\n")
        );
        assert_eq!(
            encode(json!({"headerTemplateType": "objectKeys"}), rows),
            json!("Food,Drink\nBurger,Soda\nTaco,Water\n")
        );
    }

    #[test]
    fn cells_are_cast_and_quoted() {
        let rows = json!([
            {"s": "a,b", "n": 1.5, "t": true, "f": false, "z": null, "o": {"x": [1]}, "q": "say \"hi\""},
            {"s": "two\nlines", "n": -0.0, "t": "plain"}
        ]);
        assert_eq!(
            encode(json!({}), rows),
            json!("s,n,t,f,z,o,q\n\"a,b\",1.5,1,,,\"{\"\"x\"\":[1]}\",\"say \"\"hi\"\"\"\n\"two\nlines\",0,plain,,,,\n")
        );
    }

    #[test]
    fn chosen_columns() {
        let rows = json!([{"a": 1, "b": 2, "c": 3, "n": {"x": "deep"}}, {"b": 5}, [7, 8]]);
        assert_eq!(
            encode(
                json!({"headerTemplateType": "stringTemplates",
                "headerTemplate": ["b", "{{data.missing}}", "n.x"]}),
                rows.clone()
            ),
            json!("b,n.x\n2,deep\n5,\n7,8\n")
        );
        assert_eq!(
            encode(
                json!({"headerTemplateType": "payloadPath", "headerTemplate": "data.cols"}),
                rows
            ),
            json!("b,a\n2,1\n5,\n7,8\n")
        );
        assert_eq!(
            encode(
                json!({"headerTemplateType": "stringTemplates", "headerTemplate": "{{data.h}}"}),
                json!([])
            ),
            json!("Drink\n")
        );
        assert_eq!(encode(json!({}), json!([])), json!(""));
    }

    #[test]
    fn custom_format() {
        let rows = json!([{"a": "x;y", "b": "it's"}, {"a": "back\\slash'", "b": 2}]);
        assert_eq!(
            encode(
                json!({"delimiterTemplate": ";", "recordDelimiterTemplate": "\\r\\n",
                "quoteCharTemplate": "'", "escapeCharTemplate": "\\"}),
                rows
            ),
            json!("a;b\r\n'x;y';'it\\'s'\r\n'back\\\\slash\\'';2\r\n")
        );
    }

    #[test]
    fn failures_are_written_to_the_destination() {
        for (extra, rows, text) in [
            (json!({}), json!({"a": 1}), "not an array"),
            (json!({}), json!("a,b"), "not an array"),
            (json!({}), json!([{"a": 1}, 5]), "item 1"),
            (json!({}), json!([5]), "item 0"),
            (
                json!({"headerTemplateType": "payloadPath", "headerTemplate": "data.none"}),
                json!([]),
                "not an array of column names",
            ),
            (
                json!({"delimiterTemplate": "{{data.h}}"}),
                json!([]),
                "single character",
            ),
        ] {
            let out = encode(extra, rows);
            let message = out["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(text), "{out} lacks {text}");
        }
        let config = json!({"source": "data.rows", "destination": "w.csv",
            "headerTemplateType": "stringTemplates", "headerTemplate": ["{{decodeURIComponent data.bad}}"]});
        let error = run_node(
            "CSVEncodeNode",
            &config,
            json!({"data": {"rows": [], "bad": "%"}}),
        )
        .unwrap_err();
        assert_eq!(error.name, ErrorName::TemplateError);
    }

    #[test]
    fn config_is_checked() {
        let eleven: Vec<Value> = (0..11).map(|i| json!(format!("h{i}"))).collect();
        for bad in [
            json!({"destination": "b"}),
            json!({"source": "a"}),
            json!({"source": "a", "destination": "b", "headerTemplateType": "csv"}),
            json!({"source": "a", "destination": "b", "headerTemplateType": "stringTemplates"}),
            json!({"source": "a", "destination": "b", "headerTemplateType": "stringTemplates", "headerTemplate": eleven}),
            json!({"source": "a", "destination": "b", "headerTemplateType": "stringTemplates", "headerTemplate": [1]}),
            json!({"source": "a", "destination": "b", "headerTemplateType": "payloadPath"}),
            json!({"source": "a", "destination": "b", "headerTemplateType": "payloadPath", "headerTemplate": "{{x}}"}),
            json!({"source": "a", "destination": "b", "headerTemplate": {"a": 1}}),
            json!({"source": "a", "destination": "b", "delimiterTemplate": "ab"}),
        ] {
            let error = compile_node("CSVEncodeNode", &bad).err().expect("refused");
            assert!(error.0.contains("(CSVEncodeNode)"), "{bad}: {error}");
        }
        // Encoding accepts any single character (decoding needs ASCII).
        assert!(compile_node(
            "CSVEncodeNode",
            &json!({"source": "a", "destination": "b",
            "delimiterTemplate": "§", "recordDelimiterTemplate": "<br>"})
        )
        .is_ok());
    }
}
