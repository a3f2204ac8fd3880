//! Tokens of the expression language.

use drydock_diagnostics::Span;

use crate::error::ExprError;
use crate::number::parse_number_literal;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Number(f64),
    Str(String),
    Ident(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Star,
    Not,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Eof,
}

impl Tok {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Number(n) => format!("number {}", crate::format_number(*n)),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Ident(s) => format!("'{s}'"),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::Comma => "','".into(),
            Tok::Dot => "'.'".into(),
            Tok::Star => "'*'".into(),
            Tok::Not => "'!'".into(),
            Tok::Eq => "'=='".into(),
            Tok::Ne => "'!='".into(),
            Tok::Lt => "'<'".into(),
            Tok::Le => "'<='".into(),
            Tok::Gt => "'>'".into(),
            Tok::Ge => "'>='".into(),
            Tok::And => "'&&'".into(),
            Tok::Or => "'||'".into(),
            Tok::Eof => "the end of the expression".into(),
        }
    }

    /// Tokens after which `.` is a property access rather than the start of a number.
    fn ends_value(&self) -> bool {
        matches!(
            self,
            Tok::Ident(_) | Tok::RParen | Tok::RBracket | Tok::Star | Tok::Str(_) | Tok::Number(_)
        )
    }
}

pub(crate) fn lex(src: &str) -> Result<Vec<(Tok, Span)>, ExprError> {
    let b = src.as_bytes();
    let mut out: Vec<(Tok, Span)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let prev_ends_value = out.last().is_some_and(|(t, _)| t.ends_value());
        let two = |s: &[u8]| b.get(i..i + 2) == Some(s);
        let tok = match c {
            b'(' => Some((Tok::LParen, 1)),
            b')' => Some((Tok::RParen, 1)),
            b'[' => Some((Tok::LBracket, 1)),
            b']' => Some((Tok::RBracket, 1)),
            b',' => Some((Tok::Comma, 1)),
            b'*' => Some((Tok::Star, 1)),
            b'!' if two(b"!=") => Some((Tok::Ne, 2)),
            b'!' => Some((Tok::Not, 1)),
            b'=' if two(b"==") => Some((Tok::Eq, 2)),
            b'<' if two(b"<=") => Some((Tok::Le, 2)),
            b'<' => Some((Tok::Lt, 1)),
            b'>' if two(b">=") => Some((Tok::Ge, 2)),
            b'>' => Some((Tok::Gt, 1)),
            b'&' if two(b"&&") => Some((Tok::And, 2)),
            b'|' if two(b"||") => Some((Tok::Or, 2)),
            b'.' if prev_ends_value || !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                Some((Tok::Dot, 1))
            }
            _ => None,
        };
        if let Some((t, len)) = tok {
            out.push((t, Span::new(start, start + len)));
            i += len;
            continue;
        }
        if matches!(out.last(), Some((Tok::Dot, _))) && (c.is_ascii_alphanumeric() || c == b'_') {
            let mut j = i + 1;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'-') {
                j += 1;
            }
            out.push((Tok::Ident(src[i..j].to_string()), Span::new(i, j)));
            i = j;
            continue;
        }
        match c {
            b'\'' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    let Some(rest) = src.get(j..) else {
                        return Err(unterminated(start, src.len()));
                    };
                    let Some(q) = rest.find('\'') else {
                        return Err(unterminated(start, src.len()));
                    };
                    s.push_str(&rest[..q]);
                    j += q + 1;
                    if b.get(j) == Some(&b'\'') {
                        s.push('\'');
                        j += 1;
                    } else {
                        break;
                    }
                }
                out.push((Tok::Str(s), Span::new(start, j)));
                i = j;
            }
            b'"' => {
                return Err(
                    ExprError::syntax("strings use single quotes", Span::new(i, i + 1))
                        .with_hint("write 'text' (a quote inside is doubled: 'it''s')"),
                );
            }
            b'0'..=b'9' | b'-' | b'.' | b'+' => {
                let mut j = i + 1;
                while j < b.len() {
                    let d = b[j];
                    let exp_sign = (d == b'+' || d == b'-')
                        && matches!(b[j - 1], b'e' | b'E')
                        && !is_hex(&b[i..j]);
                    if d.is_ascii_alphanumeric() || d == b'.' || exp_sign {
                        j += 1;
                    } else {
                        break;
                    }
                }
                let text = &src[i..j];
                match parse_number_literal(text) {
                    Some(n) if !text.starts_with('+') => {
                        out.push((Tok::Number(n), Span::new(i, j)))
                    }
                    _ => {
                        return Err(ExprError::syntax(
                            format!("unexpected symbol '{text}'"),
                            Span::new(i, j),
                        )
                        .with_hint("numbers look like 42, -9.2, 0xff or 2.99e-2"));
                    }
                }
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'-')
                {
                    j += 1;
                }
                let word = &src[i..j];
                let tok = match word {
                    "NaN" => Tok::Number(f64::NAN),
                    "Infinity" => Tok::Number(f64::INFINITY),
                    _ => Tok::Ident(word.to_string()),
                };
                out.push((tok, Span::new(i, j)));
                i = j;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                let end = i + ch.len_utf8();
                let msg = match ch {
                    '=' => "unexpected '=': comparison is '=='".to_string(),
                    '&' => "unexpected '&': 'and' is '&&'".to_string(),
                    '|' => "unexpected '|': 'or' is '||'".to_string(),
                    _ => format!("unexpected character '{ch}'"),
                };
                return Err(ExprError::syntax(msg, Span::new(i, end)));
            }
        }
    }
    out.push((Tok::Eof, Span::point(src.len())));
    Ok(out)
}

fn is_hex(prefix: &[u8]) -> bool {
    let p = prefix.strip_prefix(b"-").unwrap_or(prefix);
    p.len() >= 2 && p[0] == b'0' && (p[1] == b'x' || p[1] == b'X')
}

fn unterminated(start: usize, end: usize) -> ExprError {
    ExprError::syntax("unterminated string", Span::new(start, end))
        .with_hint("strings end with a single quote; a quote inside is doubled: 'it''s'")
}
