//! `Number.prototype.toFixed`, `toExponential`, `toPrecision` and `toString(radix)`, exactly.
//!
//! Rust's `{:.N}` / `{:.Ne}` formatting is exact but rounds a value lying exactly halfway
//! between two candidates to the even one (`format!("{:.0}", 2.5)` is `2`), while ECMAScript
//! picks the larger `n` (`(2.5).toFixed(0)` is `3`, `(1.125).toFixed(2)` is `1.13`). Such exact
//! ties are detected from the binary representation and rounded up by hand; every other value
//! goes through Rust's exact formatting unchanged.

use crate::value::number_to_string;

/// Whether `|x| × 10^t` lies exactly halfway between two integers.
fn is_exact_tie(x: f64, t: i32) -> bool {
    if !x.is_finite() || x == 0.0 {
        return false;
    }
    let bits = x.abs().to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mut m, mut e) = if exp_bits == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), exp_bits - 1075)
    };
    // x = m × 2^e with m odd.
    let z = m.trailing_zeros() as i32;
    m >>= z;
    e += z;
    // x × 10^t = m × 5^t × 2^(e+t); it is (odd)/2 exactly when e + t + 1 == 0 and, for t < 0,
    // 5^-t divides m.
    if e + t + 1 != 0 {
        return false;
    }
    if t >= 0 {
        return true;
    }
    let k = (-t) as u32;
    if k > 22 {
        return false;
    }
    m % 5u64.pow(k) == 0
}

/// Adds one unit in the last place to a string of decimal digits; returns true on overflow
/// (all nines), in which case the digits became `1000…` with one more digit.
fn increment_digits(digits: &mut Vec<u8>) -> bool {
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return false;
        }
    }
    digits.insert(0, b'1');
    true
}

/// `x.toFixed(digits)` (digits 0..=100).
pub fn to_fixed(x: f64, digits: usize) -> String {
    if !x.is_finite() {
        return number_to_string(x);
    }
    if x.abs() >= 1e21 {
        return number_to_string(x);
    }
    let negative = x < 0.0;
    let a = x.abs();
    let mut text = if is_exact_tie(a, digits as i32) {
        // One more digit is exact (it ends in 5); drop it and round up.
        let longer = format!("{:.*}", digits + 1, a);
        let mut body: Vec<u8> = longer.bytes().filter(|b| *b != b'.').collect();
        body.pop();
        increment_digits(&mut body);
        let mut s = String::from_utf8(body).expect("ascii digits");
        if digits > 0 {
            s.insert(s.len() - digits, '.');
        }
        s
    } else {
        format!("{a:.digits$}")
    };
    if digits > 0 && text.starts_with('.') {
        text.insert(0, '0');
    }
    // (-0.0001).toFixed(2) is "-0.00" in JavaScript: the sign follows x < 0.
    if negative {
        text.insert(0, '-');
    }
    text
}

/// The significant digits of |x| rounded to `n` digits (half up on exact ties), and the decimal
/// exponent of the first one.
fn significant(a: f64, n: usize) -> (Vec<u8>, i32) {
    let text = format!("{:.*e}", n - 1, a);
    let (mantissa, exponent) = text.split_once('e').expect("exponent form");
    let mut exponent: i32 = exponent.parse().expect("exponent");
    let mut digits: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
    // A tie at the n-th significant digit: |x| × 10^(n-1-exponent) is half an integer. The
    // rounding above may have bumped the exponent (9.5 → 1e1), so test against the unrounded
    // exponent too.
    // (With n + 2 significant digits an exact tie prints exactly, so its exponent is right.)
    let raw_exponent = if a == 0.0 {
        0
    } else {
        let t = format!("{:.*e}", n + 1, a);
        t.split_once('e')
            .expect("exponent form")
            .1
            .parse::<i32>()
            .expect("exponent")
    };
    if is_exact_tie(a, n as i32 - 1 - raw_exponent) {
        let longer = format!("{:.*e}", n, a);
        let (mantissa, _) = longer.split_once('e').expect("exponent form");
        let mut body: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
        body.pop();
        exponent = raw_exponent;
        if increment_digits(&mut body) {
            body.pop();
            exponent += 1;
        }
        digits = body;
    }
    (digits, exponent)
}

fn exponent_suffix(e: i32) -> String {
    if e >= 0 {
        format!("e+{e}")
    } else {
        format!("e-{}", -e)
    }
}

/// `x.toExponential(fraction_digits)`; `None` means "as many digits as needed".
pub fn to_exponential(x: f64, fraction_digits: Option<usize>) -> String {
    if !x.is_finite() {
        return number_to_string(x);
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let a = x.abs();
    let (digits, e) = match fraction_digits {
        Some(f) => significant(a, f + 1),
        None => {
            if a == 0.0 {
                (vec![b'0'], 0)
            } else {
                // Shortest round-trip digits.
                let t = format!("{a:e}");
                let (m, e) = t.split_once('e').expect("exponent form");
                (
                    m.bytes().filter(|b| *b != b'.').collect(),
                    e.parse().expect("exponent"),
                )
            }
        }
    };
    let digits = String::from_utf8(digits).expect("ascii digits");
    let (first, rest) = digits.split_at(1);
    let e = if a == 0.0 { 0 } else { e };
    if rest.is_empty() {
        format!("{sign}{first}{}", exponent_suffix(e))
    } else {
        format!("{sign}{first}.{rest}{}", exponent_suffix(e))
    }
}

/// `x.toPrecision(precision)` (precision 1..=100).
pub fn to_precision(x: f64, precision: usize) -> String {
    if !x.is_finite() {
        return number_to_string(x);
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let a = x.abs();
    if a == 0.0 {
        let zeros = "0".repeat(precision - 1);
        return if precision > 1 {
            format!("{sign}0.{zeros}")
        } else {
            format!("{sign}0")
        };
    }
    let (digits, e) = significant(a, precision);
    let digits = String::from_utf8(digits).expect("ascii digits");
    let p = precision as i32;
    if e < -6 || e >= p {
        let (first, rest) = digits.split_at(1);
        return if rest.is_empty() {
            format!("{sign}{first}{}", exponent_suffix(e))
        } else {
            format!("{sign}{first}.{rest}{}", exponent_suffix(e))
        };
    }
    if e == p - 1 {
        return format!("{sign}{digits}");
    }
    if e >= 0 {
        let (int, frac) = digits.split_at(e as usize + 1);
        return format!("{sign}{int}.{frac}");
    }
    format!("{sign}0.{}{digits}", "0".repeat((-(e + 1)) as usize))
}

/// `Math.round(x)`: halves round towards +∞.
pub fn js_round(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let floor = x.floor();
    let r = if x - floor >= 0.5 { floor + 1.0 } else { floor };
    if r == 0.0 && x < 0.0 {
        -0.0
    } else {
        r
    }
}

/// `x.toString(radix)` for integral `x` (d3's `b`, `o`, `x` types round first).
pub fn to_radix(x: f64, radix: u32) -> String {
    if !x.is_finite() {
        return number_to_string(x);
    }
    let negative = x < 0.0;
    let a = x.abs().trunc();
    if a >= 2f64.powi(127) {
        return number_to_string(x);
    }
    let mut n = a as u128;
    let mut out = Vec::new();
    if n == 0 {
        out.push(b'0');
    }
    while n > 0 {
        let d = (n % radix as u128) as u32;
        out.push(std::char::from_digit(d, radix).expect("digit") as u8);
        n /= radix as u128;
    }
    if negative {
        out.push(b'-');
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_fixed_rounds_ties_up() {
        let cases = [
            (2.5, 0, "3"),
            (0.5, 0, "1"),
            (1.5, 0, "2"),
            (1.125, 2, "1.13"),
            (1.005, 2, "1.00"), // 1.005 is really 1.00499999…
            (1234.5, 2, "1234.50"),
            (-1.5, 0, "-2"),
            (0.0001, 2, "0.00"),
            (-0.0001, 2, "-0.00"),
            (123.456, 1, "123.5"),
            (9.995, 2, "9.99"),
            (99.5, 0, "100"),
            (1e21, 2, "1e+21"),
            (0.1, 20, "0.10000000000000000555"),
        ];
        for (x, d, want) in cases {
            assert_eq!(to_fixed(x, d), want, "({x}).toFixed({d})");
        }
    }

    #[test]
    fn to_precision_and_exponential() {
        let cases = [
            (125.0, 2, "1.3e+2"),
            (123.456, 4, "123.5"),
            (0.000001234, 2, "0.0000012"),
            (0.0000001234, 2, "1.2e-7"),
            (1234.5, 6, "1234.50"),
            (1234.5, 4, "1235"),
            (9.5, 1, "1e+1"),
            (0.0, 3, "0.00"),
            (21.456, 6, "21.4560"),
            (1e21, 3, "1.00e+21"),
        ];
        for (x, p, want) in cases {
            assert_eq!(to_precision(x, p), want, "({x}).toPrecision({p})");
        }
        assert_eq!(to_exponential(1234.5, Some(2)), "1.23e+3");
        assert_eq!(to_exponential(1250.0, Some(1)), "1.3e+3");
        assert_eq!(to_exponential(0.00015, None), "1.5e-4");
        assert_eq!(to_exponential(0.0, Some(2)), "0.00e+0");
        assert_eq!(to_exponential(-5.0, None), "-5e+0");
    }

    #[test]
    fn rounding_and_radix() {
        assert_eq!(js_round(2.5), 3.0);
        assert_eq!(js_round(-2.5), -2.0);
        assert_eq!(js_round(0.49999999999999994), 0.0);
        assert!(js_round(-0.4).is_sign_negative());
        assert_eq!(to_radix(255.0, 16), "ff");
        assert_eq!(to_radix(-5.0, 2), "-101");
        assert_eq!(to_radix(0.0, 8), "0");
    }
}
