//! `HtmlParserNode` ("HTML/XML Parser"): parses the markup at `documentPath`, selects elements
//! with the CSS selector `selectorTemplate`, and writes one entry per match to `resultPath` —
//! **always an array** (no selector: the whole document, a one-element array; no match: `[]`).
//!
//! `resultFormatTemplate` chooses each entry's form:
//! * `text` (the default): the element's text content, descendants' text joined;
//! * `xml`: the element's markup (`outerHTML`);
//! * `json`: xml-js's non-compact structure — `{type: "element", name, attributes?,
//!   elements?}`, `{type: "text", text}`, `{type: "comment", comment}`, `{type: "doctype",
//!   doctype}`, `{type: "instruction", name, instruction}`; the whole document is
//!   `{elements: […]}`. Whitespace-only text between elements is left out (xml-js's default),
//!   and the `toHtml` template helper writes the structure back as markup.
//!
//! Decisions:
//! * Parsing is HTML5's (the `scraper` crate, html5ever), for XML too: element and attribute
//!   names are lower-cased and XML's self-closing non-HTML elements are not understood as
//!   such. Text with `<html` or `<!doctype` is parsed as a document (the whole-document result
//!   is then the full page); anything else as a fragment of a page's body, whose
//!   whole-document result is just the fragment.
//! * Attributes keep their order in the source.
//! * A selector or format without mustaches is checked when the flow is compiled. A rendered
//!   selector that is not valid CSS, a rendered format other than `text`, `xml` (or `html`)
//!   and `json`, and a `documentPath` that does not hold a string halt with
//!   `ValidationError`.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{optional_path, render, template};
use crate::path::PayloadPath;
use crate::template::Template;
use ego_tree::NodeRef;
use scraper::{ElementRef, Html, Selector};
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    document_path: Option<String>,
    selector_template: Option<String>,
    result_format_template: Option<String>,
    result_path: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Xml,
    Json,
}

enum Setting<T> {
    Fixed(T),
    Rendered(Template),
}

pub struct HtmlParser {
    document: PayloadPath,
    /// `None`: the whole document.
    selector: Option<Setting<Selector>>,
    format: Setting<Format>,
    result: PayloadPath,
}

fn parse_format(text: &str) -> Result<Format, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "text" => Ok(Format::Text),
        "xml" | "html" => Ok(Format::Xml),
        "json" => Ok(Format::Json),
        other => Err(format!(
            "resultFormatTemplate must be text, xml or json, not \"{other}\""
        )),
    }
}

fn parse_selector(text: &str) -> Result<Selector, String> {
    Selector::parse(text.trim()).map_err(|e| {
        format!(
            "selectorTemplate \"{}\" is not a CSS selector: {e}",
            text.trim()
        )
    })
}

fn required_path(
    spec: &NodeSpec<'_>,
    field: &str,
    text: Option<&str>,
) -> Result<PayloadPath, CompileError> {
    optional_path(spec, field, text)?.ok_or_else(|| spec.error(format!("{field} is required")))
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let selector = match config
        .selector_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        None => None,
        Some(text) => {
            let compiled = template(spec, "selectorTemplate", text)?;
            Some(match compiled.static_text() {
                Some(text) => Setting::Fixed(parse_selector(text).map_err(|e| spec.error(e))?),
                None => Setting::Rendered(compiled),
            })
        }
    };
    let compiled = template(
        spec,
        "resultFormatTemplate",
        config.result_format_template.as_deref().unwrap_or(""),
    )?;
    let format = match compiled.static_text() {
        Some(text) => Setting::Fixed(parse_format(text).map_err(|e| spec.error(e))?),
        None => Setting::Rendered(compiled),
    };
    Ok(CompiledNodeType::new(
        HtmlParser {
            document: required_path(spec, "documentPath", config.document_path.as_deref())?,
            selector,
            format,
            result: required_path(spec, "resultPath", config.result_path.as_deref())?,
        },
        1,
    ))
}

fn invalid(message: String) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

/// Whether the text is a whole page rather than a fragment.
fn is_document(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("<html") || lower.contains("<!doctype")
}

/// xml-js's structure of a node; `None` for what it leaves out.
fn node_json(node: NodeRef<'_, scraper::Node>) -> Option<Value> {
    match node.value() {
        scraper::Node::Element(element) => {
            let mut object = Map::new();
            object.insert("type".into(), json!("element"));
            object.insert("name".into(), json!(element.name()));
            let attributes: Map<String, Value> = element
                .attrs()
                .map(|(name, value)| (name.to_owned(), json!(value)))
                .collect();
            if !attributes.is_empty() {
                object.insert("attributes".into(), Value::Object(attributes));
            }
            let children = children_json(node);
            if !children.is_empty() {
                object.insert("elements".into(), Value::Array(children));
            }
            Some(Value::Object(object))
        }
        scraper::Node::Text(text) if text.text.trim().is_empty() => None,
        scraper::Node::Text(text) => Some(json!({"type": "text", "text": &*text.text})),
        scraper::Node::Comment(comment) => {
            Some(json!({"type": "comment", "comment": &*comment.comment}))
        }
        scraper::Node::Doctype(doctype) => {
            Some(json!({"type": "doctype", "doctype": doctype.name()}))
        }
        scraper::Node::ProcessingInstruction(pi) => {
            Some(json!({"type": "instruction", "name": &*pi.target, "instruction": &*pi.data}))
        }
        scraper::Node::Document | scraper::Node::Fragment => {
            Some(json!({"elements": children_json(node)}))
        }
    }
}

fn children_json(node: NodeRef<'_, scraper::Node>) -> Vec<Value> {
    node.children().filter_map(node_json).collect()
}

fn element_result(element: ElementRef<'_>, format: Format) -> Value {
    match format {
        Format::Text => Value::String(element.text().collect()),
        Format::Xml => Value::String(element.html()),
        Format::Json => node_json(*element).unwrap_or(Value::Null),
    }
}

/// The whole document as one result.
fn document_result(html: &Html, whole_page: bool, format: Format) -> Value {
    let root = html.root_element();
    match (format, whole_page) {
        (Format::Text, _) => Value::String(root.text().collect()),
        (Format::Xml, true) => Value::String(html.html()),
        (Format::Xml, false) => Value::String(root.inner_html()),
        (Format::Json, true) => json!({"elements": children_json(html.tree.root())}),
        (Format::Json, false) => json!({"elements": children_json(*root)}),
    }
}

impl Node for HtmlParser {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let format = match &self.format {
            Setting::Fixed(format) => *format,
            Setting::Rendered(template) => {
                parse_format(&render(template, payload)?).map_err(invalid)?
            }
        };
        let rendered;
        let selector = match &self.selector {
            None => None,
            Some(Setting::Fixed(selector)) => Some(selector),
            Some(Setting::Rendered(template)) => {
                let text = render(template, payload)?;
                if text.trim().is_empty() {
                    None
                } else {
                    rendered = parse_selector(&text).map_err(invalid)?;
                    Some(&rendered)
                }
            }
        };
        let text = match self.document.get(payload).as_deref() {
            Some(Value::String(text)) => text.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "documentPath {} must hold HTML or XML text, not {}",
                    self.document,
                    crate::value::JsValue::from(other).type_name()
                )))
            }
            None => {
                return Err(invalid(format!(
                    "documentPath {} holds no document",
                    self.document
                )))
            }
        };
        let whole_page = is_document(&text);
        let html = if whole_page {
            Html::parse_document(&text)
        } else {
            Html::parse_fragment(&text)
        };
        let results = match selector {
            None => vec![document_result(&html, whole_page, format)],
            Some(selector) => html
                .select(selector)
                .map(|element| element_result(element, format))
                .collect(),
        };
        self.result.set(payload, Value::Array(results));
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    const TABLE: &str = "<table><tr><td class=\"price\">1.50</td><td>x</td></tr>\
        <tr><td class=\"price\" data-cur=\"EUR\" id=\"b\">2.<b>25</b></td></tr></table>";

    fn parse(selector: &str, format: &str, document: &str) -> Value {
        let config = json!({"documentPath": "working.body", "selectorTemplate": selector,
            "resultFormatTemplate": format, "resultPath": "working.out"});
        let (port, after) = run_node(
            "HtmlParserNode",
            &config,
            json!({"working": {"body": document}}),
        )
        .unwrap();
        assert_eq!(port, 0);
        after["working"]["out"].clone()
    }

    #[test]
    fn text_of_each_match() {
        assert_eq!(parse("td.price", "text", TABLE), json!(["1.50", "2.25"]));
        assert_eq!(parse("td.price", "", TABLE), json!(["1.50", "2.25"]));
        assert_eq!(parse("#b b", "text", TABLE), json!(["25"]));
        assert_eq!(parse("td.nothing", "text", TABLE), json!([]));
    }

    #[test]
    fn markup_of_each_match() {
        assert_eq!(
            parse("td.price", "xml", TABLE),
            json!([
                "<td class=\"price\">1.50</td>",
                "<td class=\"price\" data-cur=\"EUR\" id=\"b\">2.<b>25</b></td>"
            ])
        );
    }

    #[test]
    fn json_of_each_match() {
        assert_eq!(
            parse("#b", "json", TABLE),
            json!([{"type": "element", "name": "td",
                "attributes": {"class": "price", "data-cur": "EUR", "id": "b"},
                "elements": [{"type": "text", "text": "2."},
                    {"type": "element", "name": "b", "elements": [{"type": "text", "text": "25"}]}]}])
        );
        // The toHtml helper writes it back.
        let template = crate::template::Template::compile("{{{toHtml out}}}").unwrap();
        let out = parse("#b", "json", TABLE);
        assert_eq!(
            template.render(&json!({ "out": out })).unwrap(),
            "<td class=\"price\" data-cur=\"EUR\" id=\"b\">2.<b>25</b></td>"
        );
    }

    #[test]
    fn the_whole_document_is_one_entry() {
        let fragment = "<p>Hello <i>there</i></p>\n<!-- note --><p>again</p>";
        assert_eq!(parse("", "text", fragment), json!(["Hello there\nagain"]));
        assert_eq!(
            parse("", "xml", fragment),
            json!(["<p>Hello <i>there</i></p>\n<!-- note --><p>again</p>"])
        );
        assert_eq!(
            parse("", "json", "<p a=\"1\">x</p> <!--c-->"),
            json!([{"elements": [
                {"type": "element", "name": "p", "attributes": {"a": "1"},
                    "elements": [{"type": "text", "text": "x"}]},
                {"type": "comment", "comment": "c"}]}])
        );
        let page = "<!DOCTYPE html><html><head><title>T</title></head><body><p>b</p></body></html>";
        assert_eq!(parse("", "xml", page), json!([page]));
        assert_eq!(parse("", "text", page), json!(["Tb"]));
        assert_eq!(parse("title", "text", page), json!(["T"]));
        let json = parse("", "json", page);
        assert_eq!(
            json[0]["elements"][0],
            json!({"type": "doctype", "doctype": "html"})
        );
        assert_eq!(json[0]["elements"][1]["name"], "html");
    }

    #[test]
    fn xml_is_read_with_html_rules() {
        let xml =
            "<?xml version=\"1.0\"?><Feed><Item id=\"1\">a</Item><item id=\"2\">b</item></Feed>";
        assert_eq!(parse("item", "text", xml), json!(["a", "b"]));
        assert_eq!(
            parse("item[id='2']", "xml", xml),
            json!(["<item id=\"2\">b</item>"])
        );
    }

    #[test]
    fn templated_settings_and_failures() {
        let config = json!({"documentPath": "data.doc", "selectorTemplate": "{{data.sel}}",
            "resultFormatTemplate": "{{data.fmt}}", "resultPath": "out"});
        let run = |sel: &str, fmt: &str, doc: Value| {
            run_node(
                "HtmlParserNode",
                &config,
                json!({"data": {"sel": sel, "fmt": fmt, "doc": doc}}),
            )
        };
        assert_eq!(
            run("td.price", "TEXT", json!(TABLE)).unwrap().1["out"],
            json!(["1.50", "2.25"])
        );
        assert_eq!(
            run("", "text", json!("<p>x</p>")).unwrap().1["out"],
            json!(["x"])
        );
        assert_eq!(
            run("td[", "text", json!(TABLE)).unwrap_err().name,
            ErrorName::ValidationError
        );
        assert_eq!(
            run("td", "yaml", json!(TABLE)).unwrap_err().name,
            ErrorName::ValidationError
        );
        assert_eq!(
            run("td", "text", json!(5)).unwrap_err().name,
            ErrorName::ValidationError
        );
        let e = run_node("HtmlParserNode", &config, json!({"data": {"sel": "p"}})).unwrap_err();
        assert_eq!(e.name, ErrorName::ValidationError);
        assert!(e.message.contains("data.doc"), "{e}");
        assert_eq!(run("td", "text", json!("")).unwrap().1["out"], json!([]));
    }

    #[test]
    fn config_is_checked() {
        let ok = json!({"documentPath": "d", "resultPath": "r", "x": 1});
        assert_eq!(compile_node("HtmlParserNode", &ok).unwrap().ports, 1);
        for bad in [
            json!({"resultPath": "r"}),
            json!({"documentPath": "d"}),
            json!({"documentPath": "d", "resultPath": "r", "selectorTemplate": "td["}),
            json!({"documentPath": "d", "resultPath": "r", "resultFormatTemplate": "csv"}),
            json!({"documentPath": "d", "resultPath": "r", "selectorTemplate": 5}),
            json!({"documentPath": "{{d}}", "resultPath": "r"}),
            json!({"documentPath": "d", "resultPath": "r", "selectorTemplate": "{{#if}}"}),
        ] {
            let e = compile_node("HtmlParserNode", &bad).err().unwrap();
            assert!(e.0.contains("(HtmlParserNode)"), "{bad}: {e}");
        }
    }
}
