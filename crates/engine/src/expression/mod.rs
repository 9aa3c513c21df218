//! Losant's expressions (FLOW-JSON §9.4, WORKFLOW-SPEC §6.4): the Conditional node's
//! `expression`, Math statements, Latch expressions, Array filters.
//!
//! An expression is compiled once ([`Expression::compile`]) and evaluated per run
//! ([`Expression::evaluate`]) over the payload:
//!
//! 1. Each `{{…}}` is a **value** — a path or a format-helper call, parsed by the template
//!    parser (block helpers are refused) — substituted as a typed operand, never spliced as
//!    text: `{{data.name}} === 'Alice'`, `{{data.list}}` is the array. A missing path is
//!    `undefined` (WORKFLOW-SPEC §6.4; FLOW-JSON's "missing → \"\"" is the older text).
//! 2. The rest is JavaScript-like, with JavaScript's coercions ([`crate::value`]):
//!    `||`, `&&` (both return an operand, as in JavaScript), `== != === !==`, `< > <= >=`,
//!    `<< >>`, `+ -`, `* / %`, unary `! - +`, and `^` for **power** (right-associative,
//!    binding tighter than a unary sign on its left: `-2^2` is `-4`, `2^-1` is `0.5`);
//!    parentheses; numbers (`12`, `1.5`, `.5`, `1e3`, `0x1f`), strings in `'…'` or `"…"` with
//!    JavaScript's escapes; `true false null undefined`; the constants `PI` and `E`; the
//!    functions `abs ceil floor round trunc sqrt pow log log10 exp sin cos tan asin acos atan
//!    atan2 sinh cosh tanh asinh acosh atanh min max length includes` (arity checked when
//!    compiling; `min`/`max` take one or more arguments, as `Math.min`/`Math.max`).
//!
//! Decisions: a bare name that is neither a constant nor a function (`data.x > 5`) is a
//! compile error that says to write `{{data.x}}` — bare payload paths are the dashboards'
//! dialect, flows put values in braces (FLOW-JSON §13.19). The ternary `?:`, assignment and
//! other JavaScript operators are not part of the language and do not parse. The result is a
//! [`JsValue`]; NaN and ±Infinity stay numbers here, and a node storing one writes what
//! [`JsValue::to_json`] gives (`null`).

mod eval;
mod parse;

use crate::template::parse::Options;
use crate::template::render::{Scope, Val};
use crate::template::TemplateError;
use crate::value::JsValue;
use serde_json::Value;

/// Why an expression did not compile or evaluate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExpressionError {
    /// The text does not parse; `column` counts characters from 1.
    #[error("expression syntax error at column {column}: {message}")]
    Syntax { column: usize, message: String },
    /// A `{{…}}` inside the expression does not compile.
    #[error("in the {{{{…}}}} at column {column}: {error}")]
    Template { column: usize, error: TemplateError },
    /// A helper inside a `{{…}}` failed while evaluating.
    #[error("{0}")]
    Evaluation(TemplateError),
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    root: parse::Node,
}

impl Expression {
    /// Compiles an expression.
    pub fn compile(text: &str) -> Result<Expression, ExpressionError> {
        Expression::compile_with(text, Options { allow_meta: true })
    }

    pub(crate) fn compile_with(
        text: &str,
        options: Options,
    ) -> Result<Expression, ExpressionError> {
        let root = parse::parse(text, options)?;
        Ok(Expression {
            source: text.to_owned(),
            root,
        })
    }

    /// The text the expression was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression over a payload.
    pub fn evaluate(&self, payload: &Value) -> Result<JsValue, ExpressionError> {
        let this = Val::Ref(payload);
        let scope = Scope {
            this: &this,
            parent: None,
            frame: None,
            root: payload,
        };
        eval::eval(&self.root, &scope).map(Val::into_js)
    }

    /// Evaluates and tests the result's truthiness (Conditional, Latch, Array filter).
    pub fn evaluate_truthy(&self, payload: &Value) -> Result<bool, ExpressionError> {
        let this = Val::Ref(payload);
        let scope = Scope {
            this: &this,
            parent: None,
            frame: None,
            root: payload,
        };
        eval::eval(&self.root, &scope).map(|v| v.truthy())
    }
}
