//! Expression text → tree: a lexer that hands each `{{…}}` to the template parser, and a
//! precedence-climbing parser.

use super::ExpressionError;
use crate::template::parse::{parse_operand, Expr, Options};
use crate::value::JsValue;

/// The most tokens an expression may have, and how deeply parentheses and unary operators may
/// nest: bounds on the compiler's and the evaluator's recursion.
pub const MAX_TOKENS: usize = 2000;
pub const MAX_NESTING: usize = 100;
/// How deep the tree may be (a chain `a + b + c …` is as deep as it is long): a bound on the
/// evaluator's recursion.
pub const MAX_TREE_DEPTH: usize = 256;

fn tree_depth(node: &Node) -> usize {
    match node {
        Node::Const(_) | Node::Operand(_) => 1,
        Node::Unary(_, a) => 1 + tree_depth(a),
        Node::Binary(_, a, b) | Node::And(a, b) | Node::Or(a, b) => {
            1 + tree_depth(a).max(tree_depth(b))
        }
        Node::Call(_, args) => 1 + args.iter().map(tree_depth).max().unwrap_or(0),
    }
}

/// A compiled expression tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(JsValue),
    Operand(Expr),
    Unary(UnaryOp, Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Not,
    Negate,
    Plus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
    Power,
    Equal,
    NotEqual,
    StrictEqual,
    StrictNotEqual,
    Less,
    Greater,
    LessEqual,
    GreaterEqual,
    ShiftLeft,
    ShiftRight,
}

macro_rules! funcs {
    ($($id:ident => $name:literal, $min:expr, $max:expr;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Func { $($id),* }

        impl Func {
            fn from_name(name: &str) -> Option<Func> {
                match name {
                    $($name => Some(Func::$id),)*
                    _ => None,
                }
            }

            /// Minimum and maximum argument counts.
            fn arity(self) -> (usize, usize) {
                match self {
                    $(Func::$id => ($min, $max),)*
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(Func::$id => $name,)*
                }
            }
        }
    };
}

funcs! {
    Abs => "abs", 1, 1;
    Ceil => "ceil", 1, 1;
    Floor => "floor", 1, 1;
    Round => "round", 1, 1;
    Trunc => "trunc", 1, 1;
    Sqrt => "sqrt", 1, 1;
    Pow => "pow", 2, 2;
    Log => "log", 1, 1;
    Log10 => "log10", 1, 1;
    Exp => "exp", 1, 1;
    Sin => "sin", 1, 1;
    Cos => "cos", 1, 1;
    Tan => "tan", 1, 1;
    Asin => "asin", 1, 1;
    Acos => "acos", 1, 1;
    Atan => "atan", 1, 1;
    Atan2 => "atan2", 2, 2;
    Sinh => "sinh", 1, 1;
    Cosh => "cosh", 1, 1;
    Tanh => "tanh", 1, 1;
    Asinh => "asinh", 1, 1;
    Acosh => "acosh", 1, 1;
    Atanh => "atanh", 1, 1;
    Min => "min", 1, usize::MAX;
    Max => "max", 1, usize::MAX;
    Length => "length", 1, 1;
    Includes => "includes", 2, 2;
}

#[derive(Debug, Clone)]
enum Tok {
    Number(f64),
    Str(String),
    Ident(String),
    Operand(Expr),
    Op(&'static str),
    End,
}

struct Lexer<'c> {
    chars: &'c [char],
    pos: usize,
    options: Options,
}

fn syntax(pos: usize, message: impl Into<String>) -> ExpressionError {
    ExpressionError::Syntax {
        column: pos + 1,
        message: message.into(),
    }
}

const OPERATORS: [&str; 22] = [
    "===", "!==", "==", "!=", "<=", ">=", "<<", ">>", "&&", "||", "<", ">", "+", "-", "*", "/",
    "%", "^", "!", "(", ")", ",",
];

impl Lexer<'_> {
    fn at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn starts_with(&self, text: &str) -> bool {
        text.chars().enumerate().all(|(i, c)| self.at(i) == Some(c))
    }

    fn next(&mut self) -> Result<(Tok, usize), ExpressionError> {
        while self.at(0).is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(c) = self.at(0) else {
            return Ok((Tok::End, start));
        };
        if self.starts_with("{{") {
            let (expr, end) = parse_operand(self.chars, start, self.options).map_err(|error| {
                ExpressionError::Template {
                    column: start + 1,
                    error,
                }
            })?;
            self.pos = end;
            return Ok((Tok::Operand(expr), start));
        }
        if c.is_ascii_digit() || (c == '.' && self.at(1).is_some_and(|d| d.is_ascii_digit())) {
            return self.number().map(|n| (Tok::Number(n), start));
        }
        if c == '\'' || c == '"' {
            return self.string(c).map(|s| (Tok::Str(s), start));
        }
        if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let mut name = String::new();
            // A bare payload path (`data.list.[0]`) is read whole, so that the error about it
            // names all of it.
            while let Some(c) = self
                .at(0)
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.' | '[' | ']'))
            {
                name.push(c);
                self.pos += 1;
            }
            return Ok((Tok::Ident(name), start));
        }
        for op in OPERATORS {
            if self.starts_with(op) {
                self.pos += op.len();
                return Ok((Tok::Op(op), start));
            }
        }
        let message = match c {
            '=' => "= is assignment, which expressions do not have; compare with == or ===".into(),
            '&' => "& is not an operator here; use && for \"and\"".into(),
            '|' => "| is not an operator here; use || for \"or\"".into(),
            '?' | ':' => "the conditional operator ?: is not supported".into(),
            '}' => "}} without a matching {{".into(),
            c => format!("unexpected character '{c}'"),
        };
        Err(syntax(start, message))
    }

    fn number(&mut self) -> Result<f64, ExpressionError> {
        let start = self.pos;
        if self.at(0) == Some('0') && matches!(self.at(1), Some('x') | Some('X')) {
            self.pos += 2;
            let mut text = String::new();
            while let Some(c) = self.at(0).filter(char::is_ascii_hexdigit) {
                text.push(c);
                self.pos += 1;
            }
            if text.is_empty() {
                return Err(syntax(start, "a hexadecimal number needs digits after 0x"));
            }
            let value = u128::from_str_radix(&text, 16).map_or(f64::INFINITY, |v| v as f64);
            return self.end_of_number(start, value);
        }
        let mut text = String::new();
        while let Some(c) = self.at(0).filter(char::is_ascii_digit) {
            text.push(c);
            self.pos += 1;
        }
        if self.at(0) == Some('.') {
            text.push('.');
            self.pos += 1;
            while let Some(c) = self.at(0).filter(char::is_ascii_digit) {
                text.push(c);
                self.pos += 1;
            }
        }
        if matches!(self.at(0), Some('e') | Some('E')) {
            let save = self.pos;
            let mut exponent = String::from("e");
            self.pos += 1;
            if let Some(sign) = self.at(0).filter(|c| *c == '+' || *c == '-') {
                exponent.push(sign);
                self.pos += 1;
            }
            let mut digits = false;
            while let Some(c) = self.at(0).filter(char::is_ascii_digit) {
                exponent.push(c);
                self.pos += 1;
                digits = true;
            }
            if digits {
                text.push_str(&exponent);
            } else {
                self.pos = save;
            }
        }
        let value = text
            .parse::<f64>()
            .map_err(|_| syntax(start, format!("invalid number {text}")))?;
        self.end_of_number(start, value)
    }

    fn end_of_number(&self, start: usize, value: f64) -> Result<f64, ExpressionError> {
        // `3in` or `1.2.3` are not numbers followed by something else.
        if self
            .at(0)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.')
        {
            return Err(syntax(start, "invalid number"));
        }
        Ok(value)
    }

    fn string(&mut self, quote: char) -> Result<String, ExpressionError> {
        let start = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            let Some(c) = self.at(0) else {
                return Err(syntax(start, "unclosed string literal"));
            };
            self.pos += 1;
            if c == quote {
                return Ok(text);
            }
            if c == '\n' || c == '\r' {
                return Err(syntax(start, "a string literal cannot span lines"));
            }
            if c != '\\' {
                text.push(c);
                continue;
            }
            let Some(e) = self.at(0) else {
                return Err(syntax(start, "unclosed string literal"));
            };
            self.pos += 1;
            match e {
                'n' => text.push('\n'),
                't' => text.push('\t'),
                'r' => text.push('\r'),
                'b' => text.push('\u{8}'),
                'f' => text.push('\u{c}'),
                'v' => text.push('\u{b}'),
                '0' if !self.at(0).is_some_and(|c| c.is_ascii_digit()) => text.push('\0'),
                'x' => {
                    let code = self
                        .hex_digits(2)
                        .ok_or_else(|| syntax(self.pos, "invalid \\x escape"))?;
                    text.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                'u' => {
                    let code = if self.at(0) == Some('{') {
                        self.pos += 1;
                        let mut digits = String::new();
                        while let Some(c) = self.at(0).filter(char::is_ascii_hexdigit) {
                            digits.push(c);
                            self.pos += 1;
                        }
                        if self.at(0) != Some('}') {
                            return Err(syntax(self.pos, "invalid \\u{…} escape"));
                        }
                        self.pos += 1;
                        u32::from_str_radix(&digits, 16).ok()
                    } else {
                        self.hex_digits(4)
                    };
                    let code = code.ok_or_else(|| syntax(self.pos, "invalid \\u escape"))?;
                    // A surrogate pair written as two escapes.
                    if (0xD800..0xDC00).contains(&code) && self.starts_with("\\u") {
                        let save = self.pos;
                        self.pos += 2;
                        match self.hex_digits(4) {
                            Some(low) if (0xDC00..0xE000).contains(&low) => {
                                let combined = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                                text.push(char::from_u32(combined).unwrap_or('\u{fffd}'));
                                continue;
                            }
                            _ => self.pos = save,
                        }
                    }
                    text.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                '\n' => {}
                other => text.push(other),
            }
        }
    }

    fn hex_digits(&mut self, n: usize) -> Option<u32> {
        let text: String = (0..n).map(|i| self.at(i)).collect::<Option<String>>()?;
        let value = u32::from_str_radix(&text, 16).ok()?;
        if !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += n;
        Some(value)
    }
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    index: usize,
    depth: usize,
}

impl Parser {
    fn enter(&mut self, pos: usize) -> Result<(), ExpressionError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(syntax(pos, "the expression nests too deeply"));
        }
        Ok(())
    }

    fn peek(&self) -> &Tok {
        &self.tokens[self.index].0
    }

    fn pos(&self) -> usize {
        self.tokens[self.index].1
    }

    fn advance(&mut self) -> (Tok, usize) {
        let token = self.tokens[self.index].clone();
        if self.index + 1 < self.tokens.len() {
            self.index += 1;
        }
        token
    }

    fn peek_op(&self) -> Option<&'static str> {
        match self.peek() {
            Tok::Op(op) => Some(op),
            _ => None,
        }
    }

    fn expect(&mut self, op: &'static str) -> Result<(), ExpressionError> {
        if self.peek_op() == Some(op) {
            self.advance();
            Ok(())
        } else {
            Err(syntax(
                self.pos(),
                format!("expected {op} {}", self.found()),
            ))
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            Tok::End => "but the expression ended".into(),
            Tok::Number(n) => format!("but found the number {n}"),
            Tok::Str(_) => "but found a string".into(),
            Tok::Ident(name) => format!("but found {name}"),
            Tok::Operand(_) => "but found a {{…}} value".into(),
            Tok::Op(op) => format!("but found {op}"),
        }
    }

    fn binary_op(op: &str) -> Option<(u8, BinaryOp)> {
        Some(match op {
            "==" => (3, BinaryOp::Equal),
            "!=" => (3, BinaryOp::NotEqual),
            "===" => (3, BinaryOp::StrictEqual),
            "!==" => (3, BinaryOp::StrictNotEqual),
            "<" => (4, BinaryOp::Less),
            ">" => (4, BinaryOp::Greater),
            "<=" => (4, BinaryOp::LessEqual),
            ">=" => (4, BinaryOp::GreaterEqual),
            "<<" => (5, BinaryOp::ShiftLeft),
            ">>" => (5, BinaryOp::ShiftRight),
            "+" => (6, BinaryOp::Add),
            "-" => (6, BinaryOp::Subtract),
            "*" => (7, BinaryOp::Multiply),
            "/" => (7, BinaryOp::Divide),
            "%" => (7, BinaryOp::Remainder),
            _ => return None,
        })
    }

    /// Precedence climbing over the binary levels 1 (`||`) to 7 (`* / %`).
    fn expression(&mut self, min_level: u8) -> Result<Node, ExpressionError> {
        let mut left = self.unary()?;
        while let Some(op) = self.peek_op() {
            let level = match op {
                "||" => 1,
                "&&" => 2,
                other => match Self::binary_op(other) {
                    Some((level, _)) => level,
                    None => break,
                },
            };
            if level < min_level {
                break;
            }
            self.advance();
            let right = self.expression(level + 1)?;
            left = match op {
                "||" => Node::Or(Box::new(left), Box::new(right)),
                "&&" => Node::And(Box::new(left), Box::new(right)),
                other => {
                    let (_, binary) = Self::binary_op(other).expect("checked above");
                    Node::Binary(binary, Box::new(left), Box::new(right))
                }
            };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ExpressionError> {
        let op = match self.peek_op() {
            Some("!") => UnaryOp::Not,
            Some("-") => UnaryOp::Negate,
            Some("+") => UnaryOp::Plus,
            _ => return self.power(),
        };
        let pos = self.pos();
        self.advance();
        self.enter(pos)?;
        let inner = self.unary()?;
        self.depth -= 1;
        Ok(Node::Unary(op, Box::new(inner)))
    }

    /// `^`, right-associative; its right side may carry a sign (`2^-1`).
    fn power(&mut self) -> Result<Node, ExpressionError> {
        let base = self.primary()?;
        if self.peek_op() == Some("^") {
            let pos = self.pos();
            self.advance();
            self.enter(pos)?;
            let exponent = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Binary(
                BinaryOp::Power,
                Box::new(base),
                Box::new(exponent),
            ));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Node, ExpressionError> {
        let pos = self.pos();
        let found = self.found();
        let (token, _) = self.advance();
        match token {
            Tok::Number(n) => Ok(Node::Const(JsValue::Number(n))),
            Tok::Str(s) => Ok(Node::Const(JsValue::String(s))),
            Tok::Operand(expr) => Ok(Node::Operand(expr)),
            Tok::Op("(") => {
                self.enter(pos)?;
                let inner = self.expression(1)?;
                self.depth -= 1;
                self.expect(")")?;
                Ok(inner)
            }
            Tok::Ident(name) => self.identifier(name, pos),
            Tok::End => Err(syntax(
                pos,
                "the expression ends where a value was expected",
            )),
            Tok::Op(_) => Err(syntax(pos, format!("expected a value {found}"))),
        }
    }

    fn identifier(&mut self, name: String, pos: usize) -> Result<Node, ExpressionError> {
        let constant = match name.as_str() {
            "true" => Some(JsValue::Bool(true)),
            "false" => Some(JsValue::Bool(false)),
            "null" => Some(JsValue::Null),
            "undefined" => Some(JsValue::Undefined),
            "PI" => Some(JsValue::Number(std::f64::consts::PI)),
            "E" => Some(JsValue::Number(std::f64::consts::E)),
            _ => None,
        };
        if let Some(value) = constant {
            return Ok(Node::Const(value));
        }
        let Some(func) = Func::from_name(&name) else {
            let path = &name;
            return Err(syntax(
                pos,
                format!(
                    "unknown name \"{path}\": payload values go in braces, e.g. {{{{{path}}}}}, \
                     and the only bare names are true, false, null, undefined, PI, E and the \
                     functions (abs, ceil, floor, round, trunc, sqrt, pow, log, log10, exp, sin, \
                     cos, tan, asin, acos, atan, atan2, sinh, cosh, tanh, asinh, acosh, atanh, \
                     min, max, length, includes)"
                ),
            ));
        };
        if self.peek_op() != Some("(") {
            return Err(syntax(
                pos,
                format!("{name} is a function: call it as {name}(…)"),
            ));
        }
        self.advance();
        self.enter(pos)?;
        let mut args = Vec::new();
        if self.peek_op() != Some(")") {
            loop {
                args.push(self.expression(1)?);
                if self.peek_op() == Some(",") {
                    self.advance();
                    continue;
                }
                break;
            }
        }
        self.expect(")")?;
        self.depth -= 1;
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            let wanted = if min == max {
                format!("{min} argument{}", if min == 1 { "" } else { "s" })
            } else {
                format!("at least {min} argument{}", if min == 1 { "" } else { "s" })
            };
            return Err(syntax(
                pos,
                format!("{}() takes {wanted}, not {}", func.name(), args.len()),
            ));
        }
        Ok(Node::Call(func, args))
    }
}

/// Parses an expression.
pub(crate) fn parse(text: &str, options: Options) -> Result<Node, ExpressionError> {
    let chars: Vec<char> = text.chars().collect();
    let mut lexer = Lexer {
        chars: &chars,
        pos: 0,
        options,
    };
    let mut tokens = Vec::new();
    loop {
        let (token, pos) = lexer.next()?;
        let end = matches!(token, Tok::End);
        if tokens.len() >= MAX_TOKENS {
            return Err(syntax(
                pos,
                format!("the expression is too long (over {MAX_TOKENS} tokens)"),
            ));
        }
        tokens.push((token, pos));
        if end {
            break;
        }
    }
    if tokens.len() == 1 {
        return Err(syntax(0, "the expression is empty"));
    }
    let mut parser = Parser {
        tokens,
        index: 0,
        depth: 0,
    };
    let node = parser.expression(1)?;
    if tree_depth(&node) > MAX_TREE_DEPTH {
        return Err(syntax(
            0,
            format!(
                "the expression is too complex (nested more than {MAX_TREE_DEPTH} operations deep)"
            ),
        ));
    }
    if !matches!(parser.peek(), Tok::End) {
        let message = match parser.peek() {
            Tok::Op(")") => "unbalanced ): no ( to close".to_owned(),
            _ => format!("expected an operator {}", parser.found()),
        };
        return Err(syntax(parser.pos(), message));
    }
    Ok(node)
}
