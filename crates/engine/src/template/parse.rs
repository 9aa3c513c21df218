//! The Handlebars parser: template text → [`Node`] tree, once, when a flow is saved.
//!
//! It follows Handlebars.js's grammar (`handlebars.l` / `handlebars.yy`): content, `{{x}}`,
//! `{{{x}}}`, `{{&x}}`, `{{#block}}…{{else}}…{{/block}}`, `{{^block}}`, `{{else if …}}` chains,
//! comments `{{! }}` and `{{!-- --}}`, `\{{` escapes, `~` whitespace control and the
//! "standalone line" rule (a block tag or comment alone on its line takes the line with it).
//! Inside a mustache: paths (`a.b`, `a/b`, `this`, `.`, `../`, `[odd key]`, `@index`,
//! `@root.x`), literals (`"…"` and `'…'` with only the quote escapable, numbers `-?\d+(\.\d+)?`,
//! `true false null undefined`), sub-expressions `(helper …)` and hash arguments `k=v`.
//!
//! Helpers are resolved here: a call to a helper that does not exist is a compile error, and
//! literal arguments that need preparing (regular expressions, date and number formats, time
//! zones, nested templates and expressions) are prepared here, so rendering never parses.

use super::helpers::{self, BlockKind, Call, HelperId};
use super::TemplateError;
use crate::value::JsValue;

/// How deeply blocks (`{{#if}}` inside `{{#each}}` …, `{{else if}}` chains included) and
/// sub-expressions may nest: a bound on the compiler's and the renderer's recursion, so that a
/// hostile template cannot exhaust the stack.
pub const MAX_NESTING: usize = 100;

/// A compiled template: a list of nodes.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(Box<str>),
    Output { expr: Expr, escape: bool },
    Block(Box<Block>),
}

/// A block helper with its programs.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub kind: BlockKind,
    pub params: Vec<Expr>,
    pub hash: Vec<(Box<str>, Expr)>,
    pub body: Vec<Node>,
    pub inverse: Vec<Node>,
    /// `#match` with a literal pattern: the regular expression, compiled.
    pub regex: Option<fancy_regex::Regex>,
}

/// A value inside a mustache: a literal, a path or a helper call.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Literal(JsValue),
    Path(PathExpr),
    Call(Box<Call>),
}

/// A path, resolved against the context stack or the `@data` frames.
#[derive(Debug, Clone)]
pub(crate) struct PathExpr {
    pub root: PathRoot,
    pub segments: Box<[Segment]>,
    pub source: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathRoot {
    /// The context `depth` levels up (`../` counts one each).
    Context { depth: usize },
    /// `@root`.
    Root,
    /// `@index`, `@key`, `@first`, `@last` (or any other `@name`, which reads as undefined),
    /// `depth` `each` frames up (`@../index`).
    Data { name: DataName, depth: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataName {
    Index,
    Key,
    First,
    Last,
    Other,
}

/// One property step. `index` is set when the key is a canonical array index.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub key: Box<str>,
    pub index: Option<usize>,
}

impl Segment {
    pub fn new(key: &str) -> Segment {
        let index = key.parse::<usize>().ok().filter(|n| n.to_string() == key);
        Segment {
            key: key.into(),
            index,
        }
    }
}

/// What the compiler may use: the meta helpers (`template`, `evalExpression`) are refused inside
/// a template or expression that a meta helper compiles ("not recursive").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub allow_meta: bool,
}

/// Parses a whole template.
pub(crate) fn parse_template(text: &str, options: Options) -> Result<Vec<Node>, TemplateError> {
    let chars: Vec<char> = text.chars().collect();
    let mut lexer = Lexer {
        chars: &chars,
        pos: 0,
        options,
    };
    let mut tokens = lexer.tokens()?;
    apply_whitespace_control(&mut tokens);
    let mut builder = Builder {
        tokens: tokens.into_iter().peekable(),
        chars: &chars,
        depth: 0,
    };
    let (nodes, end) = builder.program()?;
    match end {
        End::Eof => Ok(nodes),
        End::Close(name, pos) => Err(syntax(
            &chars,
            pos,
            &format!("{{{{/{name}}}}} closes a block that was never opened"),
        )),
        End::Else(_, pos) => Err(syntax(&chars, pos, "{{else}} outside a block")),
    }
}

/// Parses one mustache used as an expression operand: `chars[start..]` begins with `{{` (or
/// `{{{`). Returns the value expression and the position just after the closing braces.
pub(crate) fn parse_operand(
    chars: &[char],
    start: usize,
    options: Options,
) -> Result<(Expr, usize), TemplateError> {
    let mut lexer = Lexer {
        chars,
        pos: start,
        options,
    };
    let tag = lexer.tag()?;
    match tag.kind {
        TagKind::Output { expr, .. } => Ok((expr, lexer.pos)),
        TagKind::Comment => Err(syntax(chars, start, "a comment is not a value")),
        _ => Err(syntax(
            chars,
            start,
            "block helpers ({{#…}}, {{/…}}, {{else}}) cannot be used in an expression",
        )),
    }
}

pub(crate) fn syntax(chars: &[char], pos: usize, message: &str) -> TemplateError {
    let (mut line, mut column) = (1, 1);
    for &c in &chars[..pos.min(chars.len())] {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    TemplateError::Syntax(format!("{message} (line {line}, column {column})"))
}

// ---------------------------------------------------------------------------------------------
// Tokens: text and tags, before the tree is built.

#[derive(Debug)]
enum Token {
    /// Text as it will be output, and as written (the standalone rule looks at the latter).
    Text(String, String),
    Tag(Tag),
}

#[derive(Debug)]
struct Tag {
    kind: TagKind,
    strip_left: bool,
    strip_right: bool,
    pos: usize,
}

#[derive(Debug)]
enum TagKind {
    Output {
        expr: Expr,
        escape: bool,
    },
    Open {
        kind: BlockKind,
        params: Vec<Expr>,
        hash: Vec<(Box<str>, Expr)>,
        inverted: bool,
        name: String,
        regex: Option<fancy_regex::Regex>,
    },
    Close {
        name: String,
    },
    /// `{{else}}` / `{{^}}`, or `{{else if …}}` (a chained block).
    Else {
        chained: Option<Box<TagKind>>,
    },
    Comment,
}

impl TagKind {
    /// Block tags and comments may be "standalone"; plain mustaches never are.
    fn standalone_candidate(&self) -> bool {
        !matches!(self, TagKind::Output { .. })
    }
}

struct Lexer<'c> {
    chars: &'c [char],
    pos: usize,
    options: Options,
}

impl Lexer<'_> {
    fn at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn starts_with(&self, text: &str) -> bool {
        text.chars().enumerate().all(|(i, c)| self.at(i) == Some(c))
    }

    fn err(&self, pos: usize, message: &str) -> TemplateError {
        syntax(self.chars, pos, message)
    }

    fn tokens(&mut self) -> Result<Vec<Token>, TemplateError> {
        let mut tokens = Vec::new();
        let mut text = String::new();
        while self.pos < self.chars.len() {
            if self.starts_with("\\{{") {
                // An escaped mustache is text.
                text.push_str("{{");
                self.pos += 3;
                continue;
            }
            if self.starts_with("{{") {
                if !text.is_empty() {
                    tokens.push(Token::Text(text.clone(), std::mem::take(&mut text)));
                }
                tokens.push(Token::Tag(self.tag()?));
                continue;
            }
            text.push(self.chars[self.pos]);
            self.pos += 1;
        }
        if !text.is_empty() {
            tokens.push(Token::Text(text.clone(), text));
        }
        Ok(tokens)
    }

    /// Reads one tag starting at `{{`.
    fn tag(&mut self) -> Result<Tag, TemplateError> {
        let start = self.pos;
        if self.starts_with("{{{{") {
            return Err(self.err(start, "raw blocks ({{{{raw}}}}) are not supported"));
        }
        let triple = self.starts_with("{{{");
        self.pos += if triple { 3 } else { 2 };
        let mut strip_left = false;
        if self.at(0) == Some('~') {
            strip_left = true;
            self.pos += 1;
        }
        if triple {
            let (expr, strip_right) = self.expression_tag(start, "}}}")?;
            return Ok(Tag {
                kind: TagKind::Output {
                    expr,
                    escape: false,
                },
                strip_left,
                strip_right,
                pos: start,
            });
        }
        match self.at(0) {
            Some('!') => {
                let long = self.starts_with("!--");
                loop {
                    if self.pos >= self.chars.len() {
                        return Err(self.err(start, "unclosed comment"));
                    }
                    if long {
                        if self.starts_with("--}}") {
                            self.pos += 4;
                            break Ok(Tag {
                                kind: TagKind::Comment,
                                strip_left,
                                strip_right: false,
                                pos: start,
                            });
                        }
                        if self.starts_with("--~}}") {
                            self.pos += 5;
                            break Ok(Tag {
                                kind: TagKind::Comment,
                                strip_left,
                                strip_right: true,
                                pos: start,
                            });
                        }
                    } else if self.starts_with("}}") {
                        let strip_right = self.chars[self.pos - 1] == '~';
                        self.pos += 2;
                        break Ok(Tag {
                            kind: TagKind::Comment,
                            strip_left,
                            strip_right,
                            pos: start,
                        });
                    }
                    self.pos += 1;
                }
            }
            Some('>') => Err(self.err(start, "partials ({{> …}}) are not supported")),
            Some('*') => Err(self.err(start, "decorators ({{* …}}) are not supported")),
            Some('#') | Some('^') if self.at(1) == Some('>') || self.at(1) == Some('*') => {
                Err(self.err(start, "partial blocks and decorators are not supported"))
            }
            Some('#') => {
                self.pos += 1;
                self.open_tag(start, strip_left, false)
            }
            Some('^') => {
                self.pos += 1;
                self.skip_ws();
                if let Some(strip_right) = self.try_close() {
                    return Ok(Tag {
                        kind: TagKind::Else { chained: None },
                        strip_left,
                        strip_right,
                        pos: start,
                    });
                }
                self.open_tag(start, strip_left, true)
            }
            Some('/') => {
                self.pos += 1;
                let (items, strip_right) = self.items(start, "}}")?;
                let name = match items.as_slice() {
                    [(Item::Path(p), _)] => p.path.source.to_string(),
                    _ => return Err(self.err(start, "a closing tag names its block")),
                };
                Ok(Tag {
                    kind: TagKind::Close { name },
                    strip_left,
                    strip_right,
                    pos: start,
                })
            }
            Some('&') => {
                self.pos += 1;
                let (expr, strip_right) = self.expression_tag(start, "}}")?;
                Ok(Tag {
                    kind: TagKind::Output {
                        expr,
                        escape: false,
                    },
                    strip_left,
                    strip_right,
                    pos: start,
                })
            }
            _ => {
                // `{{else}}` or `{{else if …}}`?
                let save = self.pos;
                self.skip_ws();
                if self.starts_with("else") {
                    let after = self.at(4);
                    if after.is_none_or(|c| c.is_whitespace() || c == '~' || c == '}') {
                        self.pos += 4;
                        self.skip_ws();
                        if let Some(strip_right) = self.try_close() {
                            return Ok(Tag {
                                kind: TagKind::Else { chained: None },
                                strip_left,
                                strip_right,
                                pos: start,
                            });
                        }
                        let open = self.open_tag(start, strip_left, false)?;
                        return Ok(Tag {
                            kind: TagKind::Else {
                                chained: Some(Box::new(open.kind)),
                            },
                            strip_left,
                            strip_right: open.strip_right,
                            pos: start,
                        });
                    }
                }
                self.pos = save;
                let (expr, strip_right) = self.expression_tag(start, "}}")?;
                Ok(Tag {
                    kind: TagKind::Output { expr, escape: true },
                    strip_left,
                    strip_right,
                    pos: start,
                })
            }
        }
    }

    fn skip_ws(&mut self) {
        while self.at(0).is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// At `~}}` or `}}`: consumes it and tells whether it strips.
    fn try_close(&mut self) -> Option<bool> {
        if self.starts_with("~}}") {
            self.pos += 3;
            Some(true)
        } else if self.starts_with("}}") {
            self.pos += 2;
            Some(false)
        } else {
            None
        }
    }

    fn open_tag(
        &mut self,
        start: usize,
        strip_left: bool,
        inverted: bool,
    ) -> Result<Tag, TemplateError> {
        let (items, strip_right) = self.items(start, "}}")?;
        let mut parser = ItemParser {
            items: items.into_iter().peekable(),
            chars: self.chars,
            start,
            options: self.options,
            depth: 0,
        };
        let (head, params, hash) = parser.call_parts()?;
        if let Some((_, pos)) = parser.items.peek() {
            return Err(self.err(*pos, "unexpected )"));
        }
        let name = match &head {
            Item::Path(p) => p.path.source.to_string(),
            _ => return Err(self.err(start, "a block must name a block helper")),
        };
        let Some(kind) = BlockKind::from_name(&name) else {
            if HelperId::from_name(&name).is_some() {
                return Err(self.err(
                    start,
                    &format!("\"{name}\" is not a block helper; write {{{{{name} …}}}}"),
                ));
            }
            return Err(TemplateError::UnknownHelper(name));
        };
        let arity = kind.arity();
        if params.len() != arity {
            return Err(self.err(
                start,
                &format!(
                    "#{name} takes {arity} argument{}, not {}",
                    if arity == 1 { "" } else { "s" },
                    params.len()
                ),
            ));
        }
        let regex = if kind == BlockKind::Match {
            match &params[1] {
                Expr::Literal(JsValue::String(pattern)) => {
                    Some(helpers::compile_regex(pattern).map_err(|message| {
                        TemplateError::Helper {
                            helper: "match".into(),
                            message,
                        }
                    })?)
                }
                _ => None,
            }
        } else {
            None
        };
        Ok(Tag {
            kind: TagKind::Open {
                kind,
                params,
                hash,
                inverted,
                name,
                regex,
            },
            strip_left,
            strip_right,
            pos: start,
        })
    }

    /// Reads a mustache's expression up to `close` and compiles it to a value expression.
    fn expression_tag(&mut self, start: usize, close: &str) -> Result<(Expr, bool), TemplateError> {
        let (items, strip_right) = self.items(start, close)?;
        let mut parser = ItemParser {
            items: items.into_iter().peekable(),
            chars: self.chars,
            start,
            options: self.options,
            depth: 0,
        };
        let expr = parser.mustache()?;
        Ok((expr, strip_right))
    }

    /// Lexes the inside of a mustache up to its closing braces.
    fn items(
        &mut self,
        start: usize,
        close: &str,
    ) -> Result<(Vec<(Item, usize)>, bool), TemplateError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            let pos = self.pos;
            let Some(c) = self.at(0) else {
                return Err(self.err(start, &format!("unclosed mustache: expected {close}")));
            };
            if c == '~' && self.starts_with(&format!("~{close}")) {
                self.pos += 1 + close.len();
                return Ok((items, true));
            }
            if self.starts_with(close) {
                self.pos += close.len();
                return Ok((items, false));
            }
            let item = match c {
                '(' => {
                    self.pos += 1;
                    Item::Open
                }
                ')' => {
                    self.pos += 1;
                    Item::CloseParen
                }
                '=' => {
                    self.pos += 1;
                    Item::Equals
                }
                '"' | '\'' => Item::Str(self.string(c)?),
                '|' => {
                    return Err(self.err(
                        pos,
                        "| is not Handlebars syntax (there are no pipes; use a sub-expression)",
                    ))
                }
                _ => {
                    if self.starts_with("as") && self.at(2).is_some_and(char::is_whitespace) {
                        let save = self.pos;
                        self.pos += 2;
                        self.skip_ws();
                        if self.at(0) == Some('|') {
                            return Err(
                                self.err(pos, "block parameters (as |x|) are not supported")
                            );
                        }
                        self.pos = save;
                    }
                    self.path_or_literal()?
                }
            };
            items.push((item, pos));
        }
    }

    fn string(&mut self, quote: char) -> Result<String, TemplateError> {
        let start = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.at(0) {
                None => return Err(self.err(start, "unclosed string literal")),
                Some('\\') if self.at(1) == Some(quote) => {
                    text.push(quote);
                    self.pos += 2;
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(text);
                }
                Some(c) => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn is_delimiter(c: Option<char>) -> bool {
        // Handlebars's LOOKAHEAD: [=~}\s\/.)|]
        c.is_none_or(|c| c.is_whitespace() || matches!(c, '=' | '~' | '}' | '/' | '.' | ')' | '|'))
    }

    fn is_id_char(c: char) -> bool {
        !(c.is_whitespace()
            || matches!(
                c,
                '!' | '"'
                    | '#'
                    | '%'..=','
                    | '.'
                    | '/'
                    | ';'..='>'
                    | '@'
                    | '['..='^'
                    | '`'
                    | '{'..='~'
            ))
    }

    /// A literal (number, boolean, null, undefined) or a path (possibly `@data`).
    fn path_or_literal(&mut self) -> Result<Item, TemplateError> {
        let start = self.pos;
        // Number literal: -?[0-9]+(\.[0-9]+)? followed by a delimiter (not `.`).
        {
            let mut i = 0;
            if self.at(0) == Some('-') {
                i += 1;
            }
            let digits_start = i;
            while self.at(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
            if i > digits_start {
                if self.at(i) == Some('.') && self.at(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                    while self.at(i).is_some_and(|c| c.is_ascii_digit()) {
                        i += 1;
                    }
                }
                let next = self.at(i);
                if next.is_none_or(|c| c.is_whitespace() || matches!(c, '~' | '}' | ')')) {
                    let text: String = self.chars[self.pos..self.pos + i].iter().collect();
                    self.pos += i;
                    let n = text.parse::<f64>().unwrap_or(f64::NAN);
                    return Ok(Item::Literal(JsValue::Number(n), text));
                }
            }
        }
        for (word, value) in [
            ("true", JsValue::Bool(true)),
            ("false", JsValue::Bool(false)),
            ("null", JsValue::Null),
            ("undefined", JsValue::Undefined),
        ] {
            if self.starts_with(word) {
                let next = self.at(word.len());
                if next.is_none_or(|c| c.is_whitespace() || matches!(c, '~' | '}' | ')')) {
                    self.pos += word.len();
                    return Ok(Item::Literal(value, word.to_owned()));
                }
            }
        }
        // A path: [@] segment ((. | /) segment)*
        let data = self.at(0) == Some('@');
        if data {
            self.pos += 1;
        }
        let mut parts: Vec<(String, bool)> = Vec::new(); // (text, was bracketed)
        loop {
            let seg_start = self.pos;
            match self.at(0) {
                Some('[') => {
                    self.pos += 1;
                    let mut key = String::new();
                    loop {
                        match self.at(0) {
                            None => return Err(self.err(seg_start, "unclosed [ in a path")),
                            Some('\\') if self.at(1) == Some(']') => {
                                key.push(']');
                                self.pos += 2;
                            }
                            Some(']') => {
                                self.pos += 1;
                                break;
                            }
                            Some(c) => {
                                key.push(c);
                                self.pos += 1;
                            }
                        }
                    }
                    parts.push((key, true));
                }
                Some('.') if self.at(1) == Some('.') && Self::is_delimiter(self.at(2)) => {
                    self.pos += 2;
                    parts.push(("..".into(), false));
                }
                Some('.') if Self::is_delimiter(self.at(1)) => {
                    self.pos += 1;
                    parts.push((".".into(), false));
                }
                Some(c) if Self::is_id_char(c) => {
                    let mut key = String::new();
                    while let Some(c) = self.at(0).filter(|&c| Self::is_id_char(c)) {
                        key.push(c);
                        self.pos += 1;
                    }
                    parts.push((key, false));
                }
                Some(c) => {
                    return Err(self.err(seg_start, &format!("unexpected character '{c}'")));
                }
                None => return Err(self.err(seg_start, "unclosed mustache")),
            }
            // A separator continues the path.
            match self.at(0) {
                Some('.') | Some('/') => {
                    let next = self.at(1);
                    if next.is_some_and(|c| Self::is_id_char(c) || c == '[' || c == '.') {
                        self.pos += 1;
                        continue;
                    }
                    return Err(self.err(self.pos, "a path cannot end with a separator"));
                }
                _ => break,
            }
        }
        let source: String = self.chars[start..self.pos].iter().collect();
        path_from_parts(data, parts, source).map_err(|m| self.err(start, &m))
    }
}

fn path_from_parts(data: bool, parts: Vec<(String, bool)>, source: String) -> Result<Item, String> {
    // Handlebars's preparePath: `..`, `.` and `this` may only lead the path.
    let mut depth = 0;
    let mut explicit_context = false;
    let mut dig: Vec<String> = Vec::new();
    for (part, bracketed) in parts {
        let special = !bracketed && (part == ".." || part == "." || part == "this");
        if special {
            if !dig.is_empty() {
                return Err(format!("invalid path {source}: {part} must lead the path"));
            }
            explicit_context = true;
            if part == ".." {
                depth += 1;
            }
        } else {
            dig.push(part);
        }
    }
    let root = if data {
        if dig.is_empty() {
            if depth == 0 {
                return Err(format!("invalid data path {source}"));
            }
            // `@../` alone: nothing to read.
            PathRoot::Data {
                name: DataName::Other,
                depth,
            }
        } else {
            let first = dig.remove(0);
            if first == "root" && depth == 0 {
                PathRoot::Root
            } else {
                let name = match first.as_str() {
                    "index" => DataName::Index,
                    "key" => DataName::Key,
                    "first" => DataName::First,
                    "last" => DataName::Last,
                    _ => DataName::Other,
                };
                PathRoot::Data { name, depth }
            }
        }
    } else {
        PathRoot::Context { depth }
    };
    let simple = !data && !explicit_context && dig.len() == 1;
    Ok(Item::Path(RawPath {
        path: PathExpr {
            root,
            segments: dig.iter().map(|k| Segment::new(k)).collect(),
            source: source.into(),
        },
        simple,
    }))
}

#[derive(Debug)]
enum Item {
    Open,
    CloseParen,
    Equals,
    Str(String),
    Literal(JsValue, String),
    Path(RawPath),
}

#[derive(Debug)]
struct RawPath {
    path: PathExpr,
    /// A single plain identifier: may name a helper.
    simple: bool,
}

/// Where a call's head came from.
enum Head {
    Path(RawPath),
    Literal(String),
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Head::Path(p) => write!(f, "{}", p.path.source),
            Head::Literal(s) => write!(f, "{s:?}"),
        }
    }
}

struct ItemParser<'c> {
    items: std::iter::Peekable<std::vec::IntoIter<(Item, usize)>>,
    chars: &'c [char],
    start: usize,
    options: Options,
    depth: usize,
}

type CallParts = (Item, Vec<Expr>, Vec<(Box<str>, Expr)>);

impl ItemParser<'_> {
    fn err(&self, pos: usize, message: &str) -> TemplateError {
        syntax(self.chars, pos, message)
    }

    /// A whole mustache: `head params… hash…`, all items consumed.
    fn mustache(&mut self) -> Result<Expr, TemplateError> {
        let (head, params, hash) = self.call_parts()?;
        self.resolve(head, params, hash, false)
    }

    /// head params… hash… up to the end of the items (or a `)` left for the caller).
    fn call_parts(&mut self) -> Result<CallParts, TemplateError> {
        let Some((head, pos)) = self.items.next() else {
            return Err(self.err(self.start, "empty mustache"));
        };
        let head = match head {
            Item::Open => {
                return Err(self.err(pos, "a sub-expression cannot name the helper to call"))
            }
            Item::CloseParen | Item::Equals => return Err(self.err(pos, "unexpected token")),
            other => other,
        };
        let mut params = Vec::new();
        let mut hash: Vec<(Box<str>, Expr)> = Vec::new();
        loop {
            match self.items.peek() {
                None | Some((Item::CloseParen, _)) => break,
                _ => {}
            }
            let (item, pos) = self.items.next().expect("peeked");
            // A hash pair: a plain identifier followed by `=`.
            if let Item::Path(ref p) = item {
                if matches!(self.items.peek(), Some((Item::Equals, _))) {
                    if !p.simple {
                        return Err(self.err(pos, "a hash key must be a plain name"));
                    }
                    self.items.next();
                    let value = self.param()?;
                    hash.push((p.path.segments[0].key.clone(), value));
                    continue;
                }
            }
            if !hash.is_empty() {
                return Err(self.err(pos, "positional arguments must come before key=value ones"));
            }
            params.push(self.param_from(item, pos)?);
        }
        Ok((head, params, hash))
    }

    fn param(&mut self) -> Result<Expr, TemplateError> {
        match self.items.next() {
            None => Err(self.err(self.start, "missing value after =")),
            Some((item, pos)) => self.param_from(item, pos),
        }
    }

    fn param_from(&mut self, item: Item, pos: usize) -> Result<Expr, TemplateError> {
        match item {
            Item::Str(s) => Ok(Expr::Literal(JsValue::String(s))),
            Item::Literal(v, _) => Ok(Expr::Literal(v)),
            Item::Path(p) => Ok(Expr::Path(p.path)),
            Item::Open => {
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    return Err(self.err(pos, "sub-expressions nest too deeply"));
                }
                let (head, params, hash) = self.call_parts()?;
                self.depth -= 1;
                match self.items.next() {
                    Some((Item::CloseParen, _)) => {}
                    _ => return Err(self.err(pos, "unclosed sub-expression: expected )")),
                }
                self.resolve(head, params, hash, true)
            }
            Item::CloseParen | Item::Equals => Err(self.err(pos, "unexpected token")),
        }
    }

    /// Decides what a head with its arguments is: a helper call or a path lookup.
    fn resolve(
        &mut self,
        head: Item,
        params: Vec<Expr>,
        hash: Vec<(Box<str>, Expr)>,
        subexpression: bool,
    ) -> Result<Expr, TemplateError> {
        if let Some((_, pos)) = self.items.peek() {
            if !subexpression {
                let pos = *pos;
                return Err(self.err(pos, "unexpected )"));
            }
        }
        // Handlebars turns a literal head into a one-segment path ({{"a b"}} reads key "a b").
        let head = match head {
            Item::Path(p) => Head::Path(p),
            Item::Str(s) => Head::Literal(s),
            Item::Literal(_, text) => Head::Literal(text),
            _ => return Err(self.err(self.start, "unexpected token")),
        };
        let name = match &head {
            Head::Path(p) if p.simple => Some(p.path.segments[0].key.to_string()),
            Head::Literal(s) => Some(s.clone()),
            Head::Path(_) => None,
        };
        let helper = name.as_deref().and_then(HelperId::from_name);
        let has_args = !params.is_empty() || !hash.is_empty();
        if let Some(id) = helper {
            if id.is_meta() && !self.options.allow_meta {
                return Err(TemplateError::Helper {
                    helper: id.name().into(),
                    message: "template and evalExpression cannot be used inside a template or \
                              expression that one of them renders (they are not recursive)"
                        .into(),
                });
            }
            let call = helpers::prepare(id, params, hash, self.options)?;
            return Ok(Expr::Call(Box::new(call)));
        }
        if has_args || subexpression {
            let name = match &head {
                Head::Path(p) => p.path.source.to_string(),
                Head::Literal(s) => s.clone(),
            };
            return Err(TemplateError::UnknownHelper(name));
        }
        Ok(match head {
            Head::Path(p) => Expr::Path(p.path),
            Head::Literal(s) => Expr::Path(PathExpr {
                root: PathRoot::Context { depth: 0 },
                segments: vec![Segment::new(&s)].into(),
                source: s.into(),
            }),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Whitespace control: `~` and standalone lines.

fn apply_whitespace_control(tokens: &mut [Token]) {
    let n = tokens.len();
    for i in 0..n {
        let Token::Tag(tag) = &tokens[i] else {
            continue;
        };
        let (strip_left, strip_right) = (tag.strip_left, tag.strip_right);
        let candidate = tag.kind.standalone_candidate();
        if strip_left && i > 0 {
            if let Token::Text(t, _) = &mut tokens[i - 1] {
                let keep = t.trim_end().len();
                t.truncate(keep);
            }
        }
        if strip_right && i + 1 < n {
            if let Token::Text(t, _) = &mut tokens[i + 1] {
                *t = t.trim_start().to_owned();
            }
        }
        if !candidate {
            continue;
        }
        // Standalone: only whitespace between the previous newline (or the template's start)
        // and the tag, and between the tag and the next newline (or the template's end).
        let prev_ok = match i.checked_sub(1).map(|j| &tokens[j]) {
            None => true,
            Some(Token::Text(_, t)) => match t.rfind('\n') {
                Some(k) => t[k + 1..].chars().all(|c| c == ' ' || c == '\t'),
                None => i == 1 && t.chars().all(|c| c == ' ' || c == '\t'),
            },
            Some(Token::Tag(_)) => false,
        };
        let next_ok = match tokens.get(i + 1) {
            None => true,
            Some(Token::Text(_, t)) => {
                let rest = t.trim_start_matches([' ', '\t']);
                rest.starts_with('\n')
                    || rest.starts_with("\r\n")
                    || (rest.is_empty() && i + 2 == n)
            }
            Some(Token::Tag(_)) => false,
        };
        if prev_ok && next_ok {
            if i > 0 {
                if let Token::Text(t, _) = &mut tokens[i - 1] {
                    let keep = t.trim_end_matches([' ', '\t']).len();
                    t.truncate(keep);
                }
            }
            if let Some(Token::Text(t, _)) = tokens.get_mut(i + 1) {
                let rest = t.trim_start_matches([' ', '\t']);
                let rest = rest
                    .strip_prefix("\r\n")
                    .or_else(|| rest.strip_prefix('\n'))
                    .unwrap_or(rest);
                *t = rest.to_owned();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tree.

enum End {
    Eof,
    Close(String, usize),
    Else(Option<Box<TagKind>>, usize),
}

struct Builder<'c> {
    tokens: std::iter::Peekable<std::vec::IntoIter<Token>>,
    chars: &'c [char],
    depth: usize,
}

impl Builder<'_> {
    fn program(&mut self) -> Result<(Vec<Node>, End), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(token) = self.tokens.next() {
            match token {
                Token::Text(t, _) => {
                    if !t.is_empty() {
                        nodes.push(Node::Text(t.into()));
                    }
                }
                Token::Tag(tag) => match tag.kind {
                    TagKind::Comment => {}
                    TagKind::Output { expr, escape } => nodes.push(Node::Output { expr, escape }),
                    TagKind::Close { name } => return Ok((nodes, End::Close(name, tag.pos))),
                    TagKind::Else { chained } => return Ok((nodes, End::Else(chained, tag.pos))),
                    open @ TagKind::Open { .. } => {
                        let block = self.block(open, tag.pos)?;
                        nodes.push(Node::Block(Box::new(block)));
                    }
                },
            }
        }
        Ok((nodes, End::Eof))
    }

    /// Builds a block whose open tag was just read, through its closing tag.
    fn block(&mut self, open: TagKind, pos: usize) -> Result<Block, TemplateError> {
        Ok(self.block_until_close(open, pos, false)?.0)
    }

    /// Returns the block and the name its closing tag carried (checked against the opener).
    /// A chained block (`{{else if …}}`) is closed by its outermost opener's tag, so only that
    /// one checks the name.
    fn block_until_close(
        &mut self,
        open: TagKind,
        pos: usize,
        chained: bool,
    ) -> Result<(Block, String), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(syntax(self.chars, pos, "blocks nest too deeply"));
        }
        let result = self.block_inner(open, pos, chained);
        self.depth -= 1;
        result
    }

    fn block_inner(
        &mut self,
        open: TagKind,
        pos: usize,
        chained: bool,
    ) -> Result<(Block, String), TemplateError> {
        let TagKind::Open {
            kind,
            params,
            hash,
            inverted,
            name,
            regex,
        } = open
        else {
            unreachable!("only open tags start blocks")
        };
        let (body, end) = self.program()?;
        let (inverse, close_name) = match end {
            End::Eof => {
                return Err(syntax(
                    self.chars,
                    pos,
                    &format!("{{{{#{name}}}}} is never closed"),
                ))
            }
            End::Close(close, _) => (Vec::new(), close),
            End::Else(None, else_pos) => {
                let (inverse, end) = self.program()?;
                match end {
                    End::Close(close, _) => (inverse, close),
                    End::Else(..) => {
                        return Err(syntax(
                            self.chars,
                            else_pos,
                            "a second {{else}} in one block",
                        ))
                    }
                    End::Eof => {
                        return Err(syntax(
                            self.chars,
                            pos,
                            &format!("{{{{#{name}}}}} is never closed"),
                        ))
                    }
                }
            }
            End::Else(Some(chained), else_pos) => {
                // `{{else if x}}…` is an `if` block inside the inverse, closed by our close tag.
                let (inner, close) = self.block_until_close(*chained, else_pos, true)?;
                (vec![Node::Block(Box::new(inner))], close)
            }
        };
        if !chained && close_name != name {
            return Err(syntax(
                self.chars,
                pos,
                &format!("{{{{#{name}}}}} is closed by {{{{/{close_name}}}}}"),
            ));
        }
        let (body, inverse) = if inverted {
            (inverse, body)
        } else {
            (body, inverse)
        };
        Ok((
            Block {
                kind,
                params,
                hash,
                body,
                inverse,
                regex,
            },
            close_name,
        ))
    }
}
