use crate::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct DotenvError {
    pub line: usize,
    pub reason: &'static str,
}

/// Parses a dotenv file: `KEY=value` lines, `export ` prefixes, `#` comments, single quotes
/// (literal) and double quotes (with `\n`, `\"`, `\\` escapes). Values are returned as
/// [`Secret`]s; the error names the line, never the value.
pub fn dotenv(text: &str) -> Result<Vec<(String, Secret)>, DotenvError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (key, value) = line.split_once('=').ok_or(DotenvError {
            line: line_no,
            reason: "expected KEY=value",
        })?;
        let key = key.trim();
        if key.is_empty()
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || key.as_bytes()[0].is_ascii_digit()
        {
            return Err(DotenvError {
                line: line_no,
                reason: "invalid variable name: use letters, digits and _",
            });
        }
        let value = value.trim();
        let value = if let Some(rest) = value.strip_prefix('\'') {
            rest.strip_suffix('\'')
                .ok_or(DotenvError {
                    line: line_no,
                    reason: "unterminated single quote",
                })?
                .to_string()
        } else if let Some(rest) = value.strip_prefix('"') {
            let inner = rest.strip_suffix('"').ok_or(DotenvError {
                line: line_no,
                reason: "unterminated double quote",
            })?;
            unescape(inner)
        } else {
            // An unquoted value ends at ` #` (a trailing comment).
            value
                .split(" #")
                .next()
                .unwrap_or("")
                .trim_end()
                .to_string()
        };
        out.push((key.to_string(), Secret::new(value)));
    }
    Ok(out)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let got = dotenv("# c\nA=1\nexport B = two words # comment\nC='lit $x'\nD=\"a\\nb\"\n\n")
            .unwrap();
        let got: Vec<(String, String)> = got
            .into_iter()
            .map(|(k, v)| (k, v.expose().to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "lit $x".into()),
                ("D".into(), "a\nb".into())
            ]
        );
    }

    #[test]
    fn errors_name_the_line_not_the_value() {
        let err = dotenv("A=1\nnot a pair\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = dotenv("TOKEN=\"sekrit\n").unwrap_err();
        assert!(!err.to_string().contains("sekrit"));
    }
}
