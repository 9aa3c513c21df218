//! Evaluation with JavaScript's semantics.

use super::parse::{BinaryOp, Func, Node, UnaryOp};
use super::ExpressionError;
use crate::template::helpers::{includes, length};
use crate::template::js_number::js_round;
use crate::template::render::{self, Scope, Val, UNDEFINED};
use crate::value::{add, compare, loose_equals, strict_equals, JsValue};
use std::cmp::Ordering;

fn num(n: f64) -> Val<'static> {
    Val::Own(JsValue::Number(n))
}

fn boolean(b: bool) -> Val<'static> {
    Val::Own(JsValue::Bool(b))
}

/// `Math.pow` / `**`: unlike `f64::powf`, `1 ** NaN` and `(±1) ** ±Infinity` are NaN.
pub(crate) fn js_pow(base: f64, exponent: f64) -> f64 {
    if exponent.is_nan() || (base.abs() == 1.0 && exponent.is_infinite()) {
        return f64::NAN;
    }
    base.powf(exponent)
}

/// ECMAScript's ToInt32.
pub(crate) fn to_int32(n: f64) -> i32 {
    if !n.is_finite() || n == 0.0 {
        return 0;
    }
    let m = n.trunc().rem_euclid(4_294_967_296.0);
    (m as u32) as i32
}

pub(crate) fn eval<'a>(node: &Node, scope: &Scope<'a>) -> Result<Val<'a>, ExpressionError> {
    Ok(match node {
        Node::Const(v) => Val::Own(v.clone()),
        Node::Operand(expr) => render::eval(expr, scope).map_err(ExpressionError::Evaluation)?,
        Node::Unary(op, inner) => {
            let v = eval(inner, scope)?;
            match op {
                UnaryOp::Not => boolean(!v.truthy()),
                UnaryOp::Negate => num(-v.to_number()),
                UnaryOp::Plus => num(v.to_number()),
            }
        }
        Node::And(a, b) => {
            let left = eval(a, scope)?;
            if left.truthy() {
                eval(b, scope)?
            } else {
                left
            }
        }
        Node::Or(a, b) => {
            let left = eval(a, scope)?;
            if left.truthy() {
                left
            } else {
                eval(b, scope)?
            }
        }
        Node::Binary(op, a, b) => {
            let (x, y) = (eval(a, scope)?, eval(b, scope)?);
            binary(*op, &x, &y)
        }
        Node::Call(func, args) => {
            let mut values = Vec::with_capacity(args.len());
            for arg in args {
                values.push(eval(arg, scope)?);
            }
            call(*func, &values)
        }
    })
}

fn binary(op: BinaryOp, x: &Val<'_>, y: &Val<'_>) -> Val<'static> {
    use BinaryOp::*;
    match op {
        Add => {
            // The common case, two numbers, without building JsValues.
            if x.type_name() == "number" && y.type_name() == "number" {
                return num(x.to_number() + y.to_number());
            }
            Val::Own(add(&x.js(), &y.js()))
        }
        Subtract => num(x.to_number() - y.to_number()),
        Multiply => num(x.to_number() * y.to_number()),
        Divide => num(x.to_number() / y.to_number()),
        Remainder => num(x.to_number() % y.to_number()),
        Power => num(js_pow(x.to_number(), y.to_number())),
        Equal => boolean(loose_equals(&x.js(), &y.js())),
        NotEqual => boolean(!loose_equals(&x.js(), &y.js())),
        StrictEqual => boolean(strict_equals(&x.js(), &y.js())),
        StrictNotEqual => boolean(!strict_equals(&x.js(), &y.js())),
        Less | Greater | LessEqual | GreaterEqual => {
            let ordering = if x.type_name() == "number" && y.type_name() == "number" {
                x.to_number().partial_cmp(&y.to_number())
            } else {
                compare(&x.js(), &y.js())
            };
            boolean(match op {
                Less => ordering == Some(Ordering::Less),
                Greater => ordering == Some(Ordering::Greater),
                LessEqual => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
                _ => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
            })
        }
        ShiftLeft => {
            let shift = (to_int32(y.to_number()) as u32) & 31;
            num(f64::from(to_int32(x.to_number()).wrapping_shl(shift)))
        }
        ShiftRight => {
            let shift = (to_int32(y.to_number()) as u32) & 31;
            num(f64::from(to_int32(x.to_number()) >> shift))
        }
    }
}

fn call(func: Func, args: &[Val<'_>]) -> Val<'static> {
    let x = || args.first().map_or(f64::NAN, Val::to_number);
    let y = || args.get(1).map_or(f64::NAN, Val::to_number);
    match func {
        Func::Abs => num(x().abs()),
        Func::Ceil => num(x().ceil()),
        Func::Floor => num(x().floor()),
        Func::Round => num(js_round(x())),
        Func::Trunc => num(x().trunc()),
        Func::Sqrt => num(x().sqrt()),
        Func::Pow => num(js_pow(x(), y())),
        Func::Log => num(x().ln()),
        Func::Log10 => num(x().log10()),
        Func::Exp => num(x().exp()),
        Func::Sin => num(x().sin()),
        Func::Cos => num(x().cos()),
        Func::Tan => num(x().tan()),
        Func::Asin => num(x().asin()),
        Func::Acos => num(x().acos()),
        Func::Atan => num(x().atan()),
        Func::Atan2 => num(x().atan2(y())),
        Func::Sinh => num(x().sinh()),
        Func::Cosh => num(x().cosh()),
        Func::Tanh => num(x().tanh()),
        Func::Asinh => num(x().asinh()),
        Func::Acosh => num(x().acosh()),
        Func::Atanh => num(x().atanh()),
        Func::Min | Func::Max => {
            let max = func == Func::Max;
            let mut result = if max {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
            for v in args {
                let n = v.to_number();
                if n.is_nan() {
                    return num(f64::NAN);
                }
                let better = if max {
                    n > result || (n == 0.0 && result == 0.0 && result.is_sign_negative())
                } else {
                    n < result || (n == 0.0 && result == 0.0 && n.is_sign_negative())
                };
                if better {
                    result = n;
                }
            }
            num(result)
        }
        Func::Length => match length(args.first().unwrap_or(&UNDEFINED)) {
            Some(n) => num(n as f64),
            None => UNDEFINED,
        },
        Func::Includes => boolean(includes(
            args.first().unwrap_or(&UNDEFINED),
            args.get(1).unwrap_or(&UNDEFINED),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int32_and_pow() {
        assert_eq!(to_int32(4_294_967_296.0 + 5.0), 5);
        assert_eq!(to_int32(-1.0), -1);
        assert_eq!(to_int32(2_147_483_648.0), -2_147_483_648);
        assert_eq!(to_int32(f64::NAN), 0);
        assert!(js_pow(1.0, f64::NAN).is_nan());
        assert!(js_pow(-1.0, f64::INFINITY).is_nan());
        assert_eq!(js_pow(f64::NAN, 0.0), 1.0);
        assert_eq!(js_pow(2.0, -1.0), 0.5);
    }
}
