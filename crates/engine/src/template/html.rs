//! `toHtml`: the HTML/XML Parser node's `json` output (xml-js's non-compact structure) written
//! back as markup.
//!
//! Nodes are `{type: "element", name, attributes?, elements?}`, `{type: "text", text}`,
//! `{type: "cdata", cdata}`, `{type: "comment", comment}`, `{type: "instruction", name,
//! instruction}` and `{type: "doctype", doctype}`; a document is `{elements: […]}` (with an
//! optional `declaration`), and an array is written item by item. Text and attribute values
//! are escaped as xml-js does (`&`, `<`, `>`; `"` in attributes). Elements without children
//! are written with a closing tag (`<div></div>`), except HTML's void elements (`<br/>`).

use serde_json::{Map, Value};

const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Writes the markup of a parsed document, element or list of them.
pub fn to_html(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value);
    out
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => crate::value::JsValue::from(other).to_js_string(),
    }
}

fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

fn escape_attribute(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

fn write(out: &mut String, value: &Value) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| write(out, item)),
        Value::Object(map) => write_node(out, map),
        Value::String(s) => escape_text(out, s),
        _ => {}
    }
}

fn write_attributes(out: &mut String, map: &Map<String, Value>) {
    if let Some(Value::Object(attributes)) = map.get("attributes") {
        for (name, value) in attributes {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape_attribute(out, &text_of(Some(value)));
            out.push('"');
        }
    }
}

fn write_node(out: &mut String, map: &Map<String, Value>) {
    let kind = map.get("type").and_then(Value::as_str);
    match kind {
        Some("element") => {
            let name = text_of(map.get("name"));
            out.push('<');
            out.push_str(&name);
            write_attributes(out, map);
            let children = map.get("elements").and_then(Value::as_array);
            let empty = children.is_none_or(|c| c.is_empty());
            if empty && VOID.contains(&name.to_ascii_lowercase().as_str()) {
                out.push_str("/>");
                return;
            }
            out.push('>');
            if let Some(children) = children {
                children.iter().for_each(|c| write(out, c));
            }
            out.push_str("</");
            out.push_str(&name);
            out.push('>');
        }
        Some("text") => escape_text(out, &text_of(map.get("text"))),
        Some("cdata") => {
            out.push_str("<![CDATA[");
            out.push_str(&text_of(map.get("cdata")));
            out.push_str("]]>");
        }
        Some("comment") => {
            out.push_str("<!--");
            out.push_str(&text_of(map.get("comment")));
            out.push_str("-->");
        }
        Some("instruction") => {
            out.push_str("<?");
            out.push_str(&text_of(map.get("name")));
            let body = text_of(map.get("instruction"));
            if !body.is_empty() {
                out.push(' ');
                out.push_str(&body);
            }
            out.push_str("?>");
        }
        Some("doctype") => {
            out.push_str("<!DOCTYPE ");
            out.push_str(&text_of(map.get("doctype")));
            out.push('>');
        }
        _ => {
            // A document: optional declaration, then its elements.
            if let Some(Value::Object(declaration)) = map.get("declaration") {
                out.push_str("<?xml");
                write_attributes(out, declaration);
                out.push_str("?>");
            }
            if let Some(elements) = map.get("elements") {
                write(out, elements);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_markup() {
        let doc = json!({"elements": [{"type": "element", "name": "td",
            "attributes": {"class": "a\"b"},
            "elements": [{"type": "text", "text": "1 < 2"}, {"type": "element", "name": "br"}]}]});
        assert_eq!(to_html(&doc), "<td class=\"a&quot;b\">1 &lt; 2<br/></td>");
        let list = json!([{"type": "element", "name": "p", "elements": []},
            {"type": "comment", "comment": " c "}]);
        assert_eq!(to_html(&list), "<p></p><!-- c -->");
    }
}
