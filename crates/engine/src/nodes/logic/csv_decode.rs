//! `CSVDecodeNode` ("CSV: Decode"): parses the CSV text at `source` into an array of objects at
//! `destination`, one per record, keyed by the first record (the header row). Values stay
//! text. One port.
//!
//! Format (each a string template): `delimiterTemplate` (blank: `,`),
//! `recordDelimiterTemplate` (blank: a line break), `quoteCharTemplate` and
//! `escapeCharTemplate` (blank: `"`); `stripBom` removes a leading byte-order mark.
//!
//! **Failures do not halt**: a source that is not text, a record whose number of fields differs
//! from the header's, or a format setting that renders to something unusable writes
//! `{"error": {"message": …}}` to `destination` and the path continues (Losant's behaviour).
//! A template that fails to render still halts with `TemplateError`, as every template failure
//! does (FLOW-JSON §7.4).
//!
//! Decisions:
//! * Parsing follows `csv-parse` with `columns: true`, which Losant's option names come from:
//!   quoted fields may hold delimiters, quotes (doubled, or preceded by the escape character
//!   when it differs from the quote) and line breaks; a record with a different number of
//!   fields than the header is an error ("Invalid Record Length"). Empty lines are skipped, and
//!   a stray quote inside an unquoted field is kept as text rather than refused.
//! * A line break record delimiter — blank, `\n`, `\r\n` or `\r` — accepts any of the three, so
//!   files from Windows parse without a trailing `\r` in the last column. Any other record
//!   delimiter must be one ASCII character.
//! * The delimiter, quote and escape must each be one ASCII character (the parser works on
//!   bytes). In every format setting the two-character sequences `\n`, `\r`, `\t` and `\\`
//!   stand for the line feed, carriage return, tab and backslash, so a field typed as `\t` in
//!   the editor means a tab. A static setting that is unusable is a compile error.
//! * A repeated header name keeps the value of its last column; an empty text gives `[]`.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{path, render, template};
use crate::path::PayloadPath;
use crate::template::Template;
use crate::value::JsValue;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    source: Option<String>,
    destination: Option<String>,
    #[serde(flatten)]
    format: FormatConfig,
    strip_bom: Option<bool>,
}

/// The format fields the two CSV nodes share.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FormatConfig {
    delimiter_template: Option<String>,
    record_delimiter_template: Option<String>,
    quote_char_template: Option<String>,
    escape_char_template: Option<String>,
}

/// A resolved format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Format {
    pub(crate) delimiter: char,
    pub(crate) record: String,
    pub(crate) quote: char,
    pub(crate) escape: char,
}

/// Which node a format is for: decoding needs single bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Decode,
    Encode,
}

/// `\n`, `\r`, `\t` and `\\` typed as two characters stand for the character.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// One character (ASCII when decoding); blank gives the default.
fn single(text: &str, field: &str, default: char, direction: Direction) -> Result<char, String> {
    let text = unescape(text);
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Ok(default),
        (Some(c), None) if direction == Direction::Encode || c.is_ascii() => Ok(c),
        (Some(_), None) => Err(format!("{field} \"{text}\" must be an ASCII character")),
        _ => Err(format!("{field} \"{text}\" must be a single character")),
    }
}

fn record_delimiter(text: &str, direction: Direction) -> Result<String, String> {
    let text = unescape(text);
    if text.is_empty() {
        return Ok("\n".into());
    }
    let line_break = matches!(text.as_str(), "\n" | "\r\n" | "\r");
    if direction == Direction::Decode && !line_break && !(text.len() == 1 && text.is_ascii()) {
        return Err(format!(
            "recordDelimiterTemplate \"{}\" must be a line break or one ASCII character",
            text.escape_default()
        ));
    }
    Ok(text)
}

/// A setting fixed when compiling (already checked) or rendered per run.
enum Setting {
    Fixed(String),
    Template(Template),
}

pub(crate) struct FormatTemplates {
    delimiter: Setting,
    record: Setting,
    quote: Setting,
    escape: Setting,
    direction: Direction,
}

impl FormatTemplates {
    pub(crate) fn compile(
        spec: &NodeSpec<'_>,
        config: &FormatConfig,
        direction: Direction,
    ) -> Result<FormatTemplates, CompileError> {
        let setting = |field: &str, text: &Option<String>| -> Result<Setting, CompileError> {
            let compiled = template(spec, field, text.as_deref().unwrap_or_default())?;
            Ok(match compiled.static_text() {
                Some(text) => Setting::Fixed(text.to_owned()),
                None => Setting::Template(compiled),
            })
        };
        let templates = FormatTemplates {
            delimiter: setting("delimiterTemplate", &config.delimiter_template)?,
            record: setting("recordDelimiterTemplate", &config.record_delimiter_template)?,
            quote: setting("quoteCharTemplate", &config.quote_char_template)?,
            escape: setting("escapeCharTemplate", &config.escape_char_template)?,
            direction,
        };
        // Check what is static now: render the static settings over an empty payload.
        let fixed = |s: &Setting| match s {
            Setting::Fixed(text) => text.clone(),
            Setting::Template(_) => String::new(),
        };
        Format::parse(
            &fixed(&templates.delimiter),
            &fixed(&templates.record),
            &fixed(&templates.quote),
            &fixed(&templates.escape),
            direction,
        )
        .map_err(|e| spec.error(e))?;
        Ok(templates)
    }

    /// The format for this run: `Err` for a template failure (halts), `Ok(Err)` for a
    /// setting that renders unusable (written to the destination).
    pub(crate) fn resolve(&self, payload: &Value) -> Result<Result<Format, String>, NodeError> {
        let text = |s: &Setting| -> Result<String, NodeError> {
            match s {
                Setting::Fixed(text) => Ok(text.clone()),
                Setting::Template(t) => render(t, payload),
            }
        };
        Ok(Format::parse(
            &text(&self.delimiter)?,
            &text(&self.record)?,
            &text(&self.quote)?,
            &text(&self.escape)?,
            self.direction,
        ))
    }
}

impl Format {
    fn parse(
        delimiter: &str,
        record: &str,
        quote: &str,
        escape: &str,
        direction: Direction,
    ) -> Result<Format, String> {
        Ok(Format {
            delimiter: single(delimiter, "delimiterTemplate", ',', direction)?,
            record: record_delimiter(record, direction)?,
            quote: single(quote, "quoteCharTemplate", '"', direction)?,
            escape: single(escape, "escapeCharTemplate", '"', direction)?,
        })
    }
}

/// The value a CSV node writes when it fails.
pub(crate) fn error_value(message: impl Into<String>) -> Value {
    json!({"error": {"message": message.into()}})
}

/// Parses CSV text into objects keyed by the header row.
pub(crate) fn decode(text: &str, format: &Format) -> Result<Vec<Value>, String> {
    let mut builder = csv::ReaderBuilder::new();
    builder
        .has_headers(false)
        .flexible(true)
        .delimiter(format.delimiter as u8)
        .quote(format.quote as u8)
        .terminator(match format.record.as_str() {
            "\n" | "\r\n" | "\r" => csv::Terminator::CRLF,
            other => csv::Terminator::Any(other.as_bytes()[0]),
        });
    if format.escape == format.quote {
        builder.double_quote(true).escape(None);
    } else {
        builder
            .double_quote(false)
            .escape(Some(format.escape as u8));
    }
    let mut reader = builder.from_reader(text.as_bytes());
    let mut records = reader.records();
    let headers: Vec<String> = match records.next() {
        None => return Ok(Vec::new()),
        Some(Err(e)) => return Err(e.to_string()),
        Some(Ok(record)) => record.iter().map(str::to_owned).collect(),
    };
    let mut rows = Vec::new();
    for record in records {
        let record = record.map_err(|e| e.to_string())?;
        if record.len() != headers.len() {
            let line = record.position().map_or(0, |p| p.line());
            return Err(format!(
                "Invalid Record Length: columns length is {}, got {} on line {line}",
                headers.len(),
                record.len()
            ));
        }
        let mut row = Map::new();
        for (key, value) in headers.iter().zip(record.iter()) {
            row.insert(key.clone(), Value::String(value.to_owned()));
        }
        rows.push(Value::Object(row));
    }
    Ok(rows)
}

pub struct CsvDecode {
    source: PayloadPath,
    destination: PayloadPath,
    format: FormatTemplates,
    strip_bom: bool,
}

/// A required path field.
pub(crate) fn required_path(
    spec: &NodeSpec<'_>,
    field: &str,
    text: Option<&str>,
) -> Result<PayloadPath, CompileError> {
    match text {
        Some(text) if !text.trim().is_empty() => path(spec, field, text),
        _ => Err(spec.error(format!("{field} is required"))),
    }
}

/// The fields this node knows (the format fields are flattened into `Config`).
pub(crate) fn config_fields() -> Vec<&'static str> {
    let mut fields = vec!["source", "destination", "stripBom"];
    fields.extend(crate::node::config_fields::<FormatConfig>());
    fields
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    Ok(CompiledNodeType::new(
        CsvDecode {
            source: required_path(spec, "source", config.source.as_deref())?,
            destination: required_path(spec, "destination", config.destination.as_deref())?,
            format: FormatTemplates::compile(spec, &config.format, Direction::Decode)?,
            strip_bom: config.strip_bom.unwrap_or(false),
        },
        1,
    ))
}

impl CsvDecode {
    fn rows(&self, payload: &Value, format: Format) -> Result<Vec<Value>, String> {
        let text = match self.source.get(payload).as_deref() {
            Some(Value::String(text)) => text.clone(),
            other => {
                return Err(format!(
                    "{} is {}, not CSV text",
                    self.source,
                    JsValue::from(other).type_name()
                ))
            }
        };
        let mut rows = decode(text.strip_prefix('\u{feff}').unwrap_or(&text), &format)?;
        // The parser drops a byte-order mark itself; without `stripBom` it stays part of the
        // first header, as csv-parse leaves it.
        if !self.strip_bom && text.starts_with('\u{feff}') {
            for row in &mut rows {
                if let Value::Object(map) = row {
                    *map = std::mem::take(map)
                        .into_iter()
                        .enumerate()
                        .map(|(i, (k, v))| (if i == 0 { format!("\u{feff}{k}") } else { k }, v))
                        .collect();
                }
            }
        }
        Ok(rows)
    }
}

impl Node for CsvDecode {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let result = self
            .format
            .resolve(payload)?
            .and_then(|format| self.rows(payload, format));
        let value = match result {
            Ok(rows) => Value::Array(rows),
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

    fn decode(extra: Value, text: Value) -> Value {
        let mut config = json!({"source": "data.csv", "destination": "working.rows"});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        let (port, after) = run_node(
            "CSVDecodeNode",
            &config,
            json!({"data": {"csv": text, "sep": ";", "bad": "::"}}),
        )
        .unwrap();
        assert_eq!(port, 0);
        after["working"]["rows"].clone()
    }

    #[test]
    fn the_documented_example() {
        assert_eq!(
            decode(json!({}), json!("Food,Drink\nBurger,Soda\nTaco,Water\n")),
            json!([{"Food": "Burger", "Drink": "Soda"}, {"Food": "Taco", "Drink": "Water"}])
        );
    }

    #[test]
    fn quoting_and_line_breaks() {
        let text = "name,note\r\n\"Smith, J\",\"said \"\"hi\"\"\"\r\nAda,\"two\nlines\"\r\n\r\n";
        assert_eq!(
            decode(json!({"recordDelimiterTemplate": "\r\n"}), json!(text)),
            json!([{"name": "Smith, J", "note": "said \"hi\""}, {"name": "Ada", "note": "two\nlines"}])
        );
        // A line-feed delimiter still reads CRLF files cleanly.
        assert_eq!(
            decode(json!({}), json!("a,b\r\n1,2\r\n")),
            json!([{"a": "1", "b": "2"}])
        );
        assert_eq!(decode(json!({}), json!("")), json!([]));
        assert_eq!(decode(json!({}), json!("only,headers\n")), json!([]));
    }

    #[test]
    fn custom_format() {
        assert_eq!(
            decode(
                json!({"delimiterTemplate": "{{data.sep}}", "quoteCharTemplate": "'",
                    "escapeCharTemplate": "\\", "recordDelimiterTemplate": "|"}),
                json!("a;b|'x;\\'y';2|")
            ),
            json!([{"a": "x;'y", "b": "2"}])
        );
        assert_eq!(
            decode(json!({"delimiterTemplate": "\\t"}), json!("a\tb\n1\t2")),
            json!([{"a": "1", "b": "2"}])
        );
    }

    #[test]
    fn byte_order_mark() {
        let text = json!("\u{feff}id,v\n1,2\n");
        assert_eq!(
            decode(json!({"stripBom": true}), text.clone()),
            json!([{"id": "1", "v": "2"}])
        );
        assert_eq!(
            decode(json!({"stripBom": false}), text),
            json!([{"\u{feff}id": "1", "v": "2"}])
        );
    }

    #[test]
    fn failures_are_written_to_the_destination() {
        let out = decode(json!({}), json!("a,b\n1,2,3\n"));
        let message = out["error"]["message"].as_str().unwrap();
        assert!(message.contains("Invalid Record Length"), "{message}");
        assert!(message.contains("line 2"), "{message}");
        for value in [json!(null), json!(5), json!(["a,b"])] {
            let out = decode(json!({}), value.clone());
            assert!(
                out["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("not CSV text"),
                "{value}"
            );
        }
        let out = decode(json!({"delimiterTemplate": "{{data.bad}}"}), json!("a"));
        assert!(out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("single character"));
        // Nothing at the source at all.
        let config = json!({"source": "data.none", "destination": "working.rows"});
        let (_, after) = run_node("CSVDecodeNode", &config, json!({})).unwrap();
        assert!(after["working"]["rows"]["error"]["message"].is_string());
        // A template that fails to render halts.
        let config = json!({"source": "data.csv", "destination": "working.rows",
            "delimiterTemplate": "{{decodeURIComponent data.csv}}"});
        let error = run_node("CSVDecodeNode", &config, json!({"data": {"csv": "%"}})).unwrap_err();
        assert_eq!(error.name, ErrorName::TemplateError);
    }

    #[test]
    fn config_is_checked() {
        let ok = json!({"source": "a", "destination": "b", "delimiterTemplate": "",
            "recordDelimiterTemplate": "\n", "quoteCharTemplate": "", "escapeCharTemplate": "",
            "stripBom": true});
        assert_eq!(compile_node("CSVDecodeNode", &ok).unwrap().ports, 1);
        for bad in [
            json!({"destination": "b"}),
            json!({"source": "a"}),
            json!({"source": "{{a}}", "destination": "b"}),
            json!({"source": "a", "destination": "b", "delimiterTemplate": ";;"}),
            json!({"source": "a", "destination": "b", "delimiterTemplate": "§"}),
            json!({"source": "a", "destination": "b", "recordDelimiterTemplate": "<br>"}),
            json!({"source": "a", "destination": "b", "quoteCharTemplate": "''"}),
            json!({"source": "a", "destination": "b", "stripBom": "yes"}),
            json!({"source": "a", "destination": "b", "escapeCharTemplate": 5}),
        ] {
            let error = compile_node("CSVDecodeNode", &bad).err().expect("refused");
            assert!(error.0.contains("(CSVDecodeNode)"), "{bad}: {error}");
        }
    }

    #[test]
    fn unescaping() {
        assert_eq!(super::unescape("\\n\\r\\t\\\\\\x\\"), "\n\r\t\\\\x\\");
    }
}
