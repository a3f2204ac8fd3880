//! The exec-form decision: is the argument text a JSON array of strings?
//!
//! BuildKit tries `json.Unmarshal` into `[]interface{}`: text that is not valid JSON (or not an
//! array) is shell form; a valid array holding anything but strings is an error; otherwise the
//! strings are the exec form. This module reproduces that, keeping each string's byte range.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonArgs {
    /// Not a JSON array: treat the text as shell form.
    NotJson,
    /// A valid JSON array with a non-string element (at this range).
    NotStrings(Range<usize>),
    /// The decoded strings and their ranges (including the quotes) in the input.
    Strings(Vec<(String, Range<usize>)>),
}

const MAX_DEPTH: usize = 512;

pub fn parse_json_args(text: &str) -> JsonArgs {
    if !text.starts_with('[') {
        return JsonArgs::NotJson;
    }
    let mut p = P {
        b: text.as_bytes(),
        s: text,
        i: 0,
    };
    p.ws();
    let Some(b'[') = p.peek() else {
        return JsonArgs::NotJson;
    };
    p.i += 1;
    let mut out = Vec::new();
    let mut bad: Option<Range<usize>> = None;
    p.ws();
    if p.peek() == Some(b']') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            let start = p.i;
            if p.peek() == Some(b'"') {
                match p.string() {
                    Some(s) => out.push((s, start..p.i)),
                    None => return JsonArgs::NotJson,
                }
            } else {
                if !p.value(0) {
                    return JsonArgs::NotJson;
                }
                bad.get_or_insert(start..p.i);
            }
            p.ws();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b']') => {
                    p.i += 1;
                    break;
                }
                _ => return JsonArgs::NotJson,
            }
        }
    }
    p.ws();
    if p.i != p.b.len() {
        return JsonArgs::NotJson;
    }
    match bad {
        Some(r) => JsonArgs::NotStrings(r),
        None => JsonArgs::Strings(out),
    }
}

struct P<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn lit(&mut self, w: &str) -> bool {
        if self.s[self.i..].starts_with(w) {
            self.i += w.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        self.ws();
        match self.peek() {
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.lit("true"),
            Some(b'f') => self.lit("false"),
            Some(b'n') => self.lit("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return true;
                }
                loop {
                    if !self.value(depth + 1) {
                        return false;
                    }
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return true;
                        }
                        _ => return false,
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return true;
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') || self.string().is_none() {
                        return false;
                    }
                    self.ws();
                    if self.peek() != Some(b':') {
                        return false;
                    }
                    self.i += 1;
                    if !self.value(depth + 1) {
                        return false;
                    }
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return true;
                        }
                        _ => return false,
                    }
                }
            }
            _ => false,
        }
    }

    fn number(&mut self) -> bool {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return false,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return false;
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return false;
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        true
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        let v = u32::from_str_radix(h, 16).ok()?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        Some(v)
    }

    /// Decodes a string starting at `"`; `None` if invalid.
    fn string(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let rest = &self.s[self.i..];
            let c = rest.chars().next()?;
            self.i += c.len_utf8();
            match c {
                '"' => return Some(out),
                '\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi) {
                                // A surrogate pair, or U+FFFD when the low half is missing.
                                let save = self.i;
                                if self.s[self.i..].starts_with("\\u") {
                                    self.i += 2;
                                    if let Some(lo) = self.hex4()
                                        && (0xDC00..0xE000).contains(&lo)
                                    {
                                        let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                        out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                                        continue;
                                    }
                                }
                                self.i = save;
                                out.push('\u{FFFD}');
                            } else {
                                out.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
                            }
                        }
                        _ => return None,
                    }
                }
                c if (c as u32) < 0x20 => return None,
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decides_like_buildkit() {
        assert_eq!(parse_json_args("echo hi"), JsonArgs::NotJson);
        assert_eq!(parse_json_args("[echo, hi]"), JsonArgs::NotJson);
        assert_eq!(parse_json_args(r#"["a"] b"#), JsonArgs::NotJson);
        assert_eq!(parse_json_args(r#"['a']"#), JsonArgs::NotJson);
        assert!(matches!(parse_json_args(r#"["a", 1]"#), JsonArgs::NotStrings(r) if r == (6..7)));
        assert!(matches!(
            parse_json_args(r#"[null]"#),
            JsonArgs::NotStrings(_)
        ));
        assert_eq!(parse_json_args("[]"), JsonArgs::Strings(vec![]));
        assert_eq!(
            parse_json_args(r#"[ "a\"b" , "\u00e9" ]"#),
            JsonArgs::Strings(vec![("a\"b".into(), 2..8), ("é".into(), 11..19)])
        );
        assert_eq!(parse_json_args(r#"["a",]"#), JsonArgs::NotJson);
    }

    #[test]
    fn deep_nesting_is_not_a_crash() {
        let s = format!("[{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse_json_args(&s), JsonArgs::NotJson);
    }
}
