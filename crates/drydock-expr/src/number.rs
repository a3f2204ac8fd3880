//! Numbers as GitHub's expression engine sees them: JavaScript-like parsing of strings, and the
//! .NET `G15` format when a number becomes a string.

/// Converts a string to a number the way GitHub coerces strings in comparisons: surrounding
/// whitespace is ignored, an empty string is `0`, and decimal (with an optional sign, fraction
/// and exponent), `0x` hexadecimal, `0o` octal, `Infinity` and `NaN` are accepted. Anything else
/// is `NaN`.
pub fn parse_number_str(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        return 0.0;
    }
    parse_number_literal(t).unwrap_or(f64::NAN)
}

/// Parses the text of a number (no surrounding whitespace); `None` when it is not one.
pub(crate) fn parse_number_literal(t: &str) -> Option<f64> {
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let sign = if neg { -1.0 } else { 1.0 };
    if body == "Infinity" {
        return Some(sign * f64::INFINITY);
    }
    if body == "NaN" {
        return Some(f64::NAN);
    }
    let radix = |prefix: [&str; 2], radix: u32| -> Option<Option<f64>> {
        let digits = body
            .strip_prefix(prefix[0])
            .or_else(|| body.strip_prefix(prefix[1]))?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Some(None);
        }
        let mut v = 0f64;
        for c in digits.chars() {
            v = v * f64::from(radix) + f64::from(c.to_digit(radix).unwrap_or(0));
        }
        Some(Some(sign * v))
    };
    if let Some(v) = radix(["0x", "0X"], 16) {
        return v;
    }
    if let Some(v) = radix(["0o", "0O"], 8) {
        return v;
    }
    if !is_decimal(body) {
        return None;
    }
    body.parse::<f64>().ok().map(|v| sign * v)
}

/// `digits [. digits] [e [+-] digits]` or `. digits [...]`: what JSON and JavaScript accept
/// (Rust's parser also takes `inf` and `nan`, which must not pass here).
fn is_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - s;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

/// Formats a number as GitHub does when it becomes a string (.NET's `G15`): at most 15
/// significant digits, no trailing zeros, scientific notation (`1E+15`, `1E-05`) for exponents
/// of 15 and above or of -5 and below.
pub fn format_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if n == 0.0 {
        return "0".into();
    }
    // 15 significant digits: d.dddddddddddddde<exp>
    let sci = format!("{:.14e}", n.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let mut exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Rounding may have produced "10.000..." (it does not with {:e}, but be safe).
    if digits.len() > 15 {
        digits.truncate(15);
        exp += 1;
    }
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if n < 0.0 { "-" } else { "" };
    if !(-4..15).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}E{esign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        let (i, f) = digits.split_at(int_len);
        format!("{sign}{i}.{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_g15() {
        assert_eq!(format_number(1.0), "1");
        assert_eq!(format_number(-9.2), "-9.2");
        assert_eq!(format_number(0.1 + 0.2), "0.3");
        assert_eq!(format_number(255.0), "255");
        assert_eq!(format_number(-0.0299), "-0.0299");
        assert_eq!(format_number(1e15), "1E+15");
        assert_eq!(format_number(123456789012345.0), "123456789012345");
        assert_eq!(format_number(0.00001), "1E-05");
        assert_eq!(format_number(0.0001), "0.0001");
        assert_eq!(format_number(1.5e-7), "1.5E-07");
        assert_eq!(format_number(f64::NAN), "NaN");
        assert_eq!(format_number(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn parses_strings_like_github() {
        assert_eq!(parse_number_str(""), 0.0);
        assert_eq!(parse_number_str("  "), 0.0);
        assert_eq!(parse_number_str(" 0xff "), 255.0);
        assert_eq!(parse_number_str("0o10"), 8.0);
        assert_eq!(parse_number_str(" +1.5 "), 1.5);
        assert_eq!(parse_number_str("-2.99e-2"), -0.0299);
        assert_eq!(parse_number_str(".5"), 0.5);
        assert_eq!(parse_number_str("5."), 5.0);
        assert_eq!(parse_number_str("-Infinity"), f64::NEG_INFINITY);
        assert!(parse_number_str("NaN").is_nan());
        assert!(parse_number_str("inf").is_nan());
        assert!(parse_number_str("1e").is_nan());
        assert!(parse_number_str("abc").is_nan());
        assert!(parse_number_str("0x").is_nan());
        assert!(parse_number_str("1 2").is_nan());
    }
}
