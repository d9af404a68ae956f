//! Python-compatible conversions that the reference engine's semantics depend on: `str()` of floats,
//! `int()` and `float()` parsing, and the string-to-number coercion of context values
//! (evaluation.md section 2.2 and appendix A).

use std::cmp::Ordering;
use std::fmt::Write;

/// A Python integer: native when it fits in an `i128`, otherwise its normalised decimal digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Int {
    Small(i128),
    /// Magnitude beyond `i128`; `digits` has no leading zeros.
    Big {
        negative: bool,
        digits: Box<str>,
    },
}

impl Int {
    /// Builds an integer from a sign and ASCII digits (leading zeros allowed).
    fn from_digits(negative: bool, digits: &str) -> Int {
        let trimmed = digits.trim_start_matches('0');
        if trimmed.is_empty() {
            return Int::Small(0);
        }
        if trimmed.len() <= 38 {
            // 38 decimal digits always fit in an i128.
            let magnitude: i128 = trimmed.parse().unwrap_or(0);
            return Int::Small(if negative { -magnitude } else { magnitude });
        }
        Int::Big {
            negative,
            digits: trimmed.into(),
        }
    }

    /// Numeric ordering, across both representations.
    pub(crate) fn cmp(&self, other: &Int) -> Ordering {
        match (self, other) {
            (Int::Small(a), Int::Small(b)) => a.cmp(b),
            // A big magnitude exceeds every small one, so its sign decides.
            (Int::Big { negative, .. }, Int::Small(_)) => {
                if *negative {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Int::Small(_), Int::Big { .. }) => other.cmp(self).reverse(),
            (
                Int::Big {
                    negative: na,
                    digits: da,
                },
                Int::Big {
                    negative: nb,
                    digits: db,
                },
            ) => match (na, nb) {
                (false, true) => Ordering::Greater,
                (true, false) => Ordering::Less,
                _ => {
                    let magnitude = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                    if *na { magnitude.reverse() } else { magnitude }
                }
            },
        }
    }

    /// `float(int)`, correctly rounded as Python does.
    pub(crate) fn to_f64(&self) -> f64 {
        match self {
            Int::Small(i) => *i as f64,
            Int::Big { negative, digits } => {
                let magnitude: f64 = digits.parse().unwrap_or(f64::INFINITY);
                if *negative { -magnitude } else { magnitude }
            }
        }
    }

    /// `str(int)`.
    pub(crate) fn write_str(&self, out: &mut String) {
        match self {
            Int::Small(i) => {
                let _ = write!(out, "{i}");
            }
            Int::Big { negative, digits } => {
                if *negative {
                    out.push('-');
                }
                out.push_str(digits);
            }
        }
    }
}

/// Whether `c` is whitespace to Python's `str.strip()`.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Checks Python's digit-group rule (single underscores only between digits) and returns the digits.
fn digits_without_underscores(s: &str) -> Option<String> {
    if s.is_empty() || s.starts_with('_') || s.ends_with('_') || s.contains("__") {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    Some(s.replace('_', ""))
}

/// Python `int(s)` in base 10: surrounding whitespace, an optional sign, digits with single `_`
/// separators. Only ASCII digits are accepted (Python also takes other Unicode decimal digits).
pub(crate) fn parse_int(s: &str) -> Option<Int> {
    let s = s.trim_matches(is_py_space);
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let digits = digits_without_underscores(rest)?;
    Some(Int::from_digits(negative, &digits))
}

/// Python `float(s)`: whitespace, sign, decimal or exponent literals with `_` between digits, and
/// `inf`/`infinity`/`nan` in any case.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let s = s.trim_matches(is_py_space);
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = unsigned.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return s.parse().ok();
    }
    // Split mantissa and exponent, checking each digit group separately.
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], Some(&mantissa[i + 1..])),
        None => (mantissa, None),
    };
    let mut literal = String::with_capacity(s.len());
    if s.starts_with('-') {
        literal.push('-');
    }
    if !int_part.is_empty() {
        literal.push_str(&digits_without_underscores(int_part)?);
    }
    if let Some(frac) = frac_part {
        literal.push('.');
        if !frac.is_empty() {
            literal.push_str(&digits_without_underscores(frac)?);
        }
    }
    if int_part.is_empty() && frac_part.is_none_or(str::is_empty) {
        return None;
    }
    if let Some(exp) = exponent {
        literal.push('e');
        let (sign, exp_digits) = match exp.as_bytes().first() {
            Some(b'-') => ("-", &exp[1..]),
            Some(b'+') => ("", &exp[1..]),
            _ => ("", exp),
        };
        literal.push_str(sign);
        literal.push_str(&digits_without_underscores(exp_digits)?);
    }
    literal.parse().ok()
}

/// Appends Python's `repr(float)` (which `str(float)` equals): shortest round-trip digits, positional
/// for decimal exponents in -4..16 (always with a fractional part), scientific otherwise.
pub(crate) fn write_float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("nan");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "inf" } else { "-inf" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits as `d[.ddd]e<exp>`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if negative {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// `repr(float)` as a new string.
pub(crate) fn float_to_string(f: f64) -> String {
    let mut out = String::new();
    write_float(f, &mut out);
    out
}

/// Python `str()` of a JSON scalar (`True`, `None`, float repr).
pub(crate) fn python_str(value: &bullet_train_protocol::Value) -> String {
    use bullet_train_protocol::Value;
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => float_to_string(*f),
        Value::String(s) => s.clone(),
    }
}

/// The reference engine's coercion of a context string: `-?[0-9]+` becomes an integer,
/// `-?[0-9]+\.[0-9]+` a float, anything else stays text.
pub(crate) enum Coerced {
    Int(Int),
    Float(f64),
    Text,
}

pub(crate) fn coerce(s: &str) -> Coerced {
    let bytes = s.as_bytes();
    let unsigned = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let int_len = unsigned.iter().take_while(|b| b.is_ascii_digit()).count();
    if int_len == 0 {
        return Coerced::Text;
    }
    let rest = &unsigned[int_len..];
    if rest.is_empty() {
        let digits = &s[s.len() - unsigned.len()..];
        return Coerced::Int(Int::from_digits(bytes[0] == b'-', digits));
    }
    if rest[0] == b'.' && rest.len() > 1 && rest[1..].iter().all(u8::is_ascii_digit) {
        return match s.parse() {
            Ok(f) => Coerced::Float(f),
            Err(_) => Coerced::Text,
        };
    }
    Coerced::Text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (54.54, "54.54"),
            (50.0, "50.0"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1.5e-07, "1.5e-07"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789.125, "123456789.125"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (12.34, "12.34"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for (f, expected) in cases {
            assert_eq!(float_to_string(f), expected, "repr of {f:e}");
        }
    }

    #[test]
    fn int_parsing_follows_python() {
        assert_eq!(parse_int(" 42 "), Some(Int::Small(42)));
        assert_eq!(parse_int("-1_000"), Some(Int::Small(-1000)));
        assert_eq!(parse_int("+007"), Some(Int::Small(7)));
        for bad in ["1.0", "1e3", "", "-", "1__0", "_1", "1_", "0x10", "one"] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
        let big = parse_int("123456789012345678901234567890123456789012").unwrap();
        assert!(matches!(big, Int::Big { .. }));
        assert_eq!(big.cmp(&Int::Small(i128::MAX)), Ordering::Greater);
        let negative_big = parse_int("-123456789012345678901234567890123456789012").unwrap();
        assert_eq!(negative_big.cmp(&Int::Small(i128::MIN)), Ordering::Less);
        assert_eq!(negative_big.cmp(&big), Ordering::Less);
    }

    #[test]
    fn float_parsing_follows_python() {
        assert_eq!(parse_float("1.5"), Some(1.5));
        assert_eq!(parse_float(" 1_000.5 "), Some(1000.5));
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("5."), Some(5.0));
        assert_eq!(parse_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_float("NaN").unwrap().is_nan());
        for bad in ["", ".", "1e", "1_.0", "abc", "1.2.3", "e5", "1,5"] {
            assert_eq!(parse_float(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn coercion_recognises_only_plain_decimals() {
        assert!(matches!(coerce("007"), Coerced::Int(Int::Small(7))));
        assert!(matches!(coerce("-0"), Coerced::Int(Int::Small(0))));
        assert!(matches!(coerce("1.50"), Coerced::Float(f) if f == 1.5));
        for text in ["+5", "1e3", " 1", "1.", ".5", "-", "", "1.2.3", "12a"] {
            assert!(matches!(coerce(text), Coerced::Text), "{text:?}");
        }
    }
}
