//! Losant's string templates (Handlebars) and JSON templates (FLOW-JSON §9.2, §9.3, §9.5;
//! WORKFLOW-SPEC §6.2, §6.3).
//!
//! A template is compiled once, when a flow is saved ([`Template::compile`]): the text is
//! parsed, every helper is resolved (an unknown helper is [`TemplateError::UnknownHelper`]
//! then, not at run time), and literal arguments that need work — regular expressions, d3 and
//! Moment format strings, time zones, the text given to `template` and `evalExpression` — are
//! prepared. Rendering ([`Template::render`]) only walks the compiled nodes over the payload,
//! borrowing payload values instead of copying them.
//!
//! # Why a parser of our own, not the `handlebars` crate
//!
//! The crate was the expected base, and it was checked (see `spec/README.md`, pitfalls): it
//! prints values its own way (`{{arr}}` → `[1, 2, 3]`, `{{obj}}` → `[object]`, where Losant
//! prints `1,2,3` and `[object Object]`), fails on `{{data.list.length}}`, converts the context
//! to its own JSON wrapper, resolves helpers at render time (so an unknown helper is found only
//! when a run hits it), and gives helpers no compile-time hook to prepare a regular expression
//! or a format. Keeping it would have meant overriding the value printing, the path lookup,
//! every block helper and the escaping — everything but the tokenizer — while still paying for
//! its registry lookups and context conversion on every render. Handlebars' grammar is small
//! and stable, so flowd owns it: `parse.rs` follows Handlebars.js's lexer and grammar
//! (including `~` whitespace control and the standalone-line rule), `render.rs` prints with
//! [`crate::value`] (JavaScript's `String(v)`), and `helpers.rs` holds Losant's catalogue.
//!
//! # What is supported
//! * `{{path}}` (HTML-escaped like Handlebars.js: `& < > " ' \` =`), `{{{path}}}` and
//!   `{{&path}}` (raw); `null`/`undefined` print nothing, other values print as `String(v)`.
//! * Paths: `a.b`, `a/b`, `a.[0]`, `a.0`, `[odd key]`, `this`, `.`, `./x`, `../x`, `@root`,
//!   `@index`, `@key`, `@first`, `@last`, `@../index`, and JavaScript's `length` of arrays and
//!   strings.
//! * Literals `"…"`/`'…'` (only the quote can be escaped, as in Handlebars), numbers,
//!   `true false null undefined`; sub-expressions `(helper …)`; hash arguments `k=v`;
//!   comments; `\{{` escapes.
//! * Blocks with `{{else}}` (and `{{^}}`, `{{else if …}}` chains, `{{^helper}}` inversions):
//!   `if` (with `includeZero=true`), `unless`, `each` (arrays and objects), `with`, and Losant's
//!   `eq ne gt gte lt lte match includes`. The comparison helpers also work inline,
//!   `{{#if (eq a b)}}`.
//! * Format helpers: see [`HELPER_NAMES`] and the module `helpers.rs`.
//!
//! Not supported (a compile error says so): partials, decorators, raw blocks, block parameters
//! (`as |x|`), and blocks named by a path rather than a helper (`{{#data.list}}`). The
//! dashboard-only helpers (`colorMarker`, `dashboardUrl`) are unknown helpers here.
//!
//! # Decisions
//! * `{{x}}}` is `{{x}}` followed by `}` (Handlebars.js reads `}}}` and refuses it), so JSON
//!   templates such as `{"n":{{data.n}}}` work as written.
//! * `jsonEncode` output is never HTML-escaped (FLOW-JSON §9.3's recommendation), so
//!   `{{jsonEncode x}}` and `{{{jsonEncode x}}}` are the same; `template`'s output is not
//!   escaped a second time either. Every other helper's text is escaped by `{{ }}`.
//! * A template that is exactly one mustache (`{{ref}}` or `{{{ref}}}`, with nothing around
//!   it) yields the value itself through [`Template::render_value`] (the typed passthrough of
//!   FLOW-JSON §9.2); this includes a single helper call (`{{jsonDecode data.s}}` gives the
//!   object).
//! * Dates: payload dates travel as ISO 8601 strings, so `format` treats a string that is an
//!   ISO date-time as a date; `formatDate` and friends also take epoch milliseconds (numbers
//!   or digit strings). Without `tz=`, dates are shown in UTC; `locale=` is accepted and only
//!   `en` exists.

mod d3_format;
pub mod encode;
pub(crate) mod gps;
pub(crate) mod helpers;
mod html;
pub mod js_number;
pub(crate) mod moment;
pub(crate) mod parse;
pub(crate) mod render;

use crate::value::JsValue;
use parse::{Expr, Node, Options};
use render::{render_nodes, Scope, Val};
use serde_json::Value;

pub use helpers::HELPER_NAMES;

/// Why a template did not compile or render.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The text is not a valid template (the message says where).
    #[error("template syntax error: {0}")]
    Syntax(String),
    /// A helper that does not exist.
    #[error("unknown helper \"{0}\"")]
    UnknownHelper(String),
    /// A helper refused its arguments (at compile time for literal ones, else at run time).
    #[error("helper \"{helper}\": {message}")]
    Helper { helper: String, message: String },
    /// A JSON template rendered text that is not JSON.
    #[error("the JSON template did not render valid JSON: {0}")]
    InvalidJson(String),
}

/// How much of the rendered text an [`TemplateError::InvalidJson`] quotes.
pub const INVALID_JSON_QUOTE_CHARS: usize = 200;

/// A compiled string template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

impl Template {
    /// Compiles a template.
    pub fn compile(text: &str) -> Result<Template, TemplateError> {
        Template::compile_with(text, Options { allow_meta: true })
    }

    pub(crate) fn compile_with(text: &str, options: Options) -> Result<Template, TemplateError> {
        let nodes = parse::parse_template(text, options)?;
        Ok(Template {
            source: text.to_owned(),
            nodes,
        })
    }

    /// The text the template was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text itself when the template has no mustaches (nothing to render).
    pub fn static_text(&self) -> Option<&str> {
        match self.nodes.as_slice() {
            [] => Some(""),
            [Node::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Renders the template over a payload: always text.
    pub fn render(&self, payload: &Value) -> Result<String, TemplateError> {
        let this = Val::Ref(payload);
        let scope = Scope {
            this: &this,
            parent: None,
            frame: None,
            root: payload,
        };
        let mut out = String::with_capacity(self.source.len() + 16);
        render_nodes(&self.nodes, &scope, &mut out)?;
        Ok(out)
    }

    /// The single mustache's expression when the template is exactly one `{{ref}}`.
    fn passthrough(&self) -> Option<&Expr> {
        match self.nodes.as_slice() {
            [Node::Output { expr, .. }] => Some(expr),
            _ => None,
        }
    }

    /// Renders with the typed passthrough: a template that is exactly one `{{ref}}` (or
    /// `{{{ref}}}`) yields the referenced value itself (object, array, number, `undefined`…);
    /// any other template yields its rendered text.
    pub fn render_value(&self, payload: &Value) -> Result<JsValue, TemplateError> {
        match self.passthrough() {
            Some(expr) => {
                let this = Val::Ref(payload);
                let scope = Scope {
                    this: &this,
                    parent: None,
                    frame: None,
                    root: payload,
                };
                Ok(render::eval(expr, &scope)?.into_js())
            }
            None => self.render(payload).map(JsValue::String),
        }
    }
}

/// A compiled JSON template: rendered as a string template, then parsed as JSON.
#[derive(Debug, Clone)]
pub struct JsonTemplate {
    template: Template,
}

impl JsonTemplate {
    /// Compiles a JSON template.
    pub fn compile(text: &str) -> Result<JsonTemplate, TemplateError> {
        Ok(JsonTemplate {
            template: Template::compile(text)?,
        })
    }

    /// The text the template was compiled from.
    pub fn source(&self) -> &str {
        self.template.source()
    }

    /// Renders and parses. Text that is not JSON is [`TemplateError::InvalidJson`], quoting
    /// the rendered text (truncated to [`INVALID_JSON_QUOTE_CHARS`]).
    pub fn render(&self, payload: &Value) -> Result<Value, TemplateError> {
        let text = self.template.render(payload)?;
        serde_json::from_str(&text).map_err(|e| {
            let mut quoted: String = text.chars().take(INVALID_JSON_QUOTE_CHARS).collect();
            if quoted.len() < text.len() {
                quoted.push('…');
            }
            TemplateError::InvalidJson(format!("{e}; rendered text: {quoted}"))
        })
    }
}
