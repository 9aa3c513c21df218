//! Number formatting with d3-format specifiers, the `format` helper's language for numbers:
//! `[[fill]align][sign][symbol][0][width][,][.precision][~][type]`, the en-US locale.
//!
//! A port of d3-format 3's `formatLocale(…).format`, with every type (`e f g r s % p b o d x X
//! c n` and none) and ASCII `-` for the minus sign (as d3-format 1, which Losant's older
//! dashboards used; d3-format 2+ prints U+2212). Specifiers are parsed once ([`Spec::parse`]).

use super::js_number::{js_round, to_exponential, to_fixed, to_precision, to_radix};
use crate::value::number_to_string;

/// A parsed specifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    fill: char,
    align: char,
    sign: char,
    symbol: Option<char>,
    zero: bool,
    width: usize,
    comma: bool,
    precision: Option<usize>,
    trim: bool,
    kind: char,
}

const PREFIXES: [&str; 17] = [
    "y", "z", "a", "f", "p", "n", "\u{b5}", "m", "", "k", "M", "G", "T", "P", "E", "Z", "Y",
];

impl Spec {
    /// Parses a specifier; d3 throws `invalid format: …` on anything else.
    pub fn parse(text: &str) -> Result<Spec, String> {
        let invalid = || format!("invalid format: {text}");
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let mut fill = ' ';
        let mut align = '>';
        let is_align = |c: char| matches!(c, '<' | '>' | '=' | '^');
        if chars.len() >= 2 && is_align(chars[1]) {
            fill = chars[0];
            align = chars[1];
            i = 2;
        } else if !chars.is_empty() && is_align(chars[0]) {
            align = chars[0];
            i = 1;
        }
        let mut sign = '-';
        if let Some(&c) = chars.get(i) {
            if matches!(c, '+' | '-' | '(' | ' ') {
                sign = c;
                i += 1;
            }
        }
        let mut symbol = None;
        if let Some(&c) = chars.get(i) {
            if c == '$' || c == '#' {
                symbol = Some(c);
                i += 1;
            }
        }
        let mut zero = false;
        if chars.get(i) == Some(&'0') {
            zero = true;
            i += 1;
        }
        let mut width = 0usize;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            width = width.saturating_mul(10).saturating_add(d as usize);
            i += 1;
        }
        let mut comma = false;
        if chars.get(i) == Some(&',') {
            comma = true;
            i += 1;
        }
        let mut precision = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            let mut p = 0usize;
            let mut any = false;
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                p = p.saturating_mul(10).saturating_add(d as usize);
                any = true;
                i += 1;
            }
            if !any {
                return Err(invalid());
            }
            precision = Some(p);
        }
        let mut trim = false;
        if chars.get(i) == Some(&'~') {
            trim = true;
            i += 1;
        }
        let mut kind = ' ';
        if let Some(&c) = chars.get(i) {
            if c.is_ascii_alphabetic() || c == '%' {
                kind = c;
                i += 1;
            }
        }
        if i != chars.len() {
            return Err(invalid());
        }
        // d3: "n" is ",g"; "" and any unknown type are ".12~g".
        if kind == 'n' {
            comma = true;
            kind = 'g';
        } else if !"efgprs%bodxXc".contains(kind) || kind == ' ' {
            if precision.is_none() {
                precision = Some(12);
            }
            trim = true;
            kind = 'g';
        }
        if zero || (fill == '0' && align == '=') {
            zero = true;
            fill = '0';
            align = '=';
        }
        Ok(Spec {
            fill,
            align,
            sign,
            symbol,
            zero,
            width,
            comma,
            precision,
            trim,
            kind,
        })
    }

    /// Formats a number.
    pub fn format(&self, value: f64) -> String {
        let kind = self.kind;
        let prefix = match self.symbol {
            Some('$') => "$".to_owned(),
            Some('#') if "boxX".contains(kind) => format!("0{}", kind.to_ascii_lowercase()),
            _ => String::new(),
        };
        let suffix = if self.symbol == Some('$') {
            ""
        } else if kind == '%' || kind == 'p' {
            "%"
        } else {
            ""
        };
        let precision = match self.precision {
            None => 6,
            Some(p) if "gprs".contains(kind) => p.clamp(1, 21),
            Some(p) => p.min(20),
        };
        let maybe_suffix = "defgprs%".contains(kind);

        let mut value_prefix = prefix;
        let mut value_suffix = suffix.to_owned();
        let mut text;
        if kind == 'c' {
            value_suffix = number_to_string(value) + &value_suffix;
            text = String::new();
        } else {
            let negative = value < 0.0 || (value == 0.0 && value.is_sign_negative());
            let mut prefix_exponent = 0;
            text = if value.is_nan() {
                "NaN".to_owned()
            } else {
                format_type(kind, value.abs(), precision, &mut prefix_exponent)
            };
            if self.trim {
                text = format_trim(&text);
            }
            // A negative value that rounds to zero loses its sign unless "+" was asked for.
            let negative = negative && !(is_zero_text(&text) && self.sign != '+');
            let sign_text = if negative {
                if self.sign == '(' {
                    "(".to_owned()
                } else {
                    "-".to_owned()
                }
            } else if self.sign == '-' || self.sign == '(' {
                String::new()
            } else {
                self.sign.to_string()
            };
            value_prefix = sign_text + &value_prefix;
            let si = if kind == 's' {
                PREFIXES[(8 + prefix_exponent / 3) as usize]
            } else {
                ""
            };
            value_suffix = format!(
                "{si}{value_suffix}{}",
                if negative && self.sign == '(' {
                    ")"
                } else {
                    ""
                }
            );
            if maybe_suffix {
                if let Some(pos) = text.find(|c: char| !c.is_ascii_digit()) {
                    let rest = text[pos..].to_owned();
                    value_suffix = rest + &value_suffix;
                    text.truncate(pos);
                }
            }
        }
        if self.comma && !self.zero {
            text = group(&text, usize::MAX);
        }
        let length =
            value_prefix.chars().count() + text.chars().count() + value_suffix.chars().count();
        let mut padding = if length < self.width {
            std::iter::repeat_n(self.fill, self.width - length).collect::<String>()
        } else {
            String::new()
        };
        if self.comma && self.zero {
            let limit = if padding.is_empty() {
                usize::MAX
            } else {
                self.width.saturating_sub(value_suffix.chars().count())
            };
            text = group(&(padding.clone() + &text), limit);
            padding.clear();
        }
        match self.align {
            '<' => format!("{value_prefix}{text}{value_suffix}{padding}"),
            '=' => format!("{value_prefix}{padding}{text}{value_suffix}"),
            '^' => {
                let pad: Vec<char> = padding.chars().collect();
                let half = pad.len() / 2;
                let left: String = pad[..half].iter().collect();
                let right: String = pad[half..].iter().collect();
                format!("{left}{value_prefix}{text}{value_suffix}{right}")
            }
            _ => format!("{padding}{value_prefix}{text}{value_suffix}"),
        }
    }
}

/// `+text === 0` for the digits d3 produced.
fn is_zero_text(text: &str) -> bool {
    let n = crate::value::string_to_number(text);
    n == 0.0
}

fn format_type(kind: char, x: f64, p: usize, prefix_exponent: &mut i32) -> String {
    match kind {
        '%' => to_fixed(x * 100.0, p),
        'b' => to_radix(js_round(x), 2),
        'o' => to_radix(js_round(x), 8),
        'x' => to_radix(js_round(x), 16),
        'X' => to_radix(js_round(x), 16).to_uppercase(),
        'd' => {
            let r = js_round(x);
            if r.abs() >= 1e21 {
                format!("{r:.0}")
            } else {
                number_to_string(r)
            }
        }
        'e' => to_exponential(x, Some(p)),
        'f' => to_fixed(x, p),
        'g' => to_precision(x, p),
        'p' => format_rounded(x * 100.0, p),
        'r' => format_rounded(x, p),
        's' => format_prefix_auto(x, p, prefix_exponent),
        _ => number_to_string(x),
    }
}

/// d3's formatDecimalParts: significand digits (no dot) and exponent.
fn decimal_parts(x: f64, p: Option<usize>) -> Option<(String, i32)> {
    if !x.is_finite() {
        return None;
    }
    let text = match p {
        Some(p) if p > 0 => to_exponential(x, Some(p - 1)),
        _ => to_exponential(x, None),
    };
    let (coefficient, exponent) = text.split_once('e')?;
    let digits: String = coefficient.chars().filter(|c| *c != '.').collect();
    Some((digits, exponent.parse().ok()?))
}

fn format_rounded(x: f64, p: usize) -> String {
    let Some((coefficient, exponent)) = decimal_parts(x, Some(p)) else {
        return number_to_string(x);
    };
    let len = coefficient.len() as i32;
    if exponent < 0 {
        format!("0.{}{coefficient}", "0".repeat((-exponent - 1) as usize))
    } else if len > exponent + 1 {
        let (a, b) = coefficient.split_at((exponent + 1) as usize);
        format!("{a}.{b}")
    } else {
        format!("{coefficient}{}", "0".repeat((exponent - len + 1) as usize))
    }
}

fn format_prefix_auto(x: f64, p: usize, prefix_exponent: &mut i32) -> String {
    let Some((coefficient, exponent)) = decimal_parts(x, Some(p)) else {
        return number_to_string(x);
    };
    *prefix_exponent = (exponent as f64 / 3.0).floor().clamp(-8.0, 8.0) as i32 * 3;
    let i = exponent - *prefix_exponent + 1;
    let n = coefficient.len() as i32;
    if i == n {
        coefficient
    } else if i > n {
        format!("{coefficient}{}", "0".repeat((i - n) as usize))
    } else if i > 0 {
        let (a, b) = coefficient.split_at(i as usize);
        format!("{a}.{b}")
    } else {
        let p2 = (p as i32 + i - 1).max(0) as usize;
        let digits = decimal_parts(x, Some(p2)).map(|d| d.0).unwrap_or_default();
        format!("0.{}{digits}", "0".repeat((-i) as usize))
    }
}

/// d3's formatTrim: drops insignificant trailing zeros ("1.2000k" → "1.2k").
fn format_trim(s: &str) -> String {
    let b = s.as_bytes();
    let n = b.len();
    let mut i0: isize = -1;
    let mut i1: isize = 0;
    let mut i = 1;
    while i < n {
        match b[i] {
            b'.' => {
                i0 = i as isize;
                i1 = i as isize;
            }
            b'0' => {
                if i0 == 0 {
                    i0 = i as isize;
                }
                i1 = i as isize;
            }
            c => {
                if !(b'1'..=b'9').contains(&c) {
                    break;
                }
                if i0 > 0 {
                    i0 = 0;
                }
            }
        }
        i += 1;
    }
    if i0 > 0 {
        format!("{}{}", &s[..i0 as usize], &s[(i1 + 1) as usize..])
    } else {
        s.to_owned()
    }
}

/// Thousands grouping (en-US: groups of 3, ","), limited to `width` characters as d3 does.
fn group(value: &str, width: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut i = chars.len();
    let mut parts: Vec<String> = Vec::new();
    let mut length = 0usize;
    let mut g = 3usize;
    while i > 0 && g > 0 {
        if length + g + 1 > width {
            g = width.saturating_sub(length).max(1);
        }
        let start = i.saturating_sub(g);
        parts.push(chars[start..i].iter().collect());
        i = start;
        length += g + 1;
        if length > width {
            break;
        }
        g = 3;
    }
    parts.reverse();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(spec: &str, x: f64) -> String {
        Spec::parse(spec).unwrap().format(x)
    }

    #[test]
    fn d3_examples() {
        let cases = [
            (",.2f", 1234.5, "1,234.50"),
            (",.6", 1234.5, "1,234.5"),
            (",.6", 21.456, "21.456"),
            (",.6", 1234567.891, "1.23457e+6"),
            (".0%", 0.123, "12%"),
            (".1%", 0.123, "12.3%"),
            ("+.1f", 3.0, "+3.0"),
            ("$,.2f", 1234.5, "$1,234.50"),
            ("$,.2f", -1234.5, "-$1,234.50"),
            ("(.2f", -3.5, "(3.50)"),
            ("d", 3.7, "4"),
            (",d", 1234567.0, "1,234,567"),
            (".2s", 42e6, "42M"),
            ("s", 1500.0, "1.50000k"),
            ("~s", 1500.0, "1.5k"),
            (".3s", 0.0012, "1.20m"),
            (".2e", 12345.0, "1.23e+4"),
            ("x", 255.0, "ff"),
            ("#x", 255.0, "0xff"),
            ("b", 5.0, "101"),
            ("08.2f", -3.25159, "-0003.25"),
            ("010,.2f", 1234.5, "001,234.50"),
            (">10", 42.0, "        42"),
            ("<6d", 42.0, "42    "),
            ("^7d", 42.0, "  42   "),
            ("*^9d", 42.0, "***42****"),
            (".3r", 0.0012345, "0.00123"),
            (".2f", -0.001, "0.00"),
            ("+.2f", -0.001, "-0.00"),
            ("", 0.1 + 0.2, "0.3"),
            ("", 1234.0, "1234"),
            (".2f", f64::NAN, "NaN"),
            ("c", 42.0, "42"),
            (".3p", 0.12345, "12.3%"),
            (".1p", 0.12345, "10%"),
            ("e", 0.0, "0.000000e+0"),
            ("g", 0.00001234, "0.0000123400"),
            (".3~g", 1.5, "1.5"),
        ];
        for (spec, x, want) in cases {
            assert_eq!(f(spec, x), want, "format({spec:?})({x})");
        }
    }

    #[test]
    fn invalid_specifiers() {
        for bad in ["YYYY", ".f", "abc", ",.2ff"] {
            assert!(Spec::parse(bad).is_err(), "{bad}");
        }
    }
}
