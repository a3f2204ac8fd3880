//! One line of a `tags`/`flavor` input: comma-separated fields, a field may be double-quoted
//! (`"pattern=\d{1,3}"`, `""` for a quote inside), as the CSV reader of metadata-action accepts.

use drydock_diagnostics::Span;

use crate::error::TagsError;

/// A field with its span (relative to the line's text offset given to [`split`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub text: String,
    pub span: Span,
}

pub(crate) fn split(line: &str, offset: usize) -> Result<Vec<Field>, TagsError> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        // skip leading spaces of the field
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        let start = i;
        let mut text = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            loop {
                let Some(rel) = line[i..].find('"') else {
                    return Err(TagsError::new(
                        "unterminated quoted field",
                        Span::new(offset + start, offset + line.len()),
                    ));
                };
                text.push_str(&line[i..i + rel]);
                i += rel + 1;
                if b.get(i) == Some(&b'"') {
                    text.push('"');
                    i += 1;
                } else {
                    break;
                }
            }
            let end = i;
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            if i < b.len() && b[i] != b',' {
                return Err(TagsError::new(
                    "unexpected text after a quoted field",
                    Span::new(offset + i, offset + line.len()),
                )
                .hint("quote the whole field: \"key=value, with commas\""));
            }
            out.push(Field {
                text,
                span: Span::new(offset + start, offset + end),
            });
        } else {
            let rel = line[i..].find(',').unwrap_or(line.len() - i);
            let raw = &line[i..i + rel];
            let trimmed = raw.trim_end();
            text.push_str(trimmed);
            out.push(Field {
                text,
                span: Span::new(offset + start, offset + start + trimmed.len()),
            });
            i += rel;
        }
        if i >= b.len() {
            break;
        }
        // b[i] == ','
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        split(s, 0).unwrap().into_iter().map(|f| f.text).collect()
    }

    #[test]
    fn splits_and_unquotes() {
        assert_eq!(texts("type=raw,value=foo"), ["type=raw", "value=foo"]);
        assert_eq!(
            texts("type=match, \"pattern=\\d{1,3}\""),
            ["type=match", "pattern=\\d{1,3}"]
        );
        assert_eq!(texts("a,\"b\"\"c\",d"), ["a", "b\"c", "d"]);
        assert_eq!(texts("prefix="), ["prefix="]);
        assert!(split("\"abc", 0).is_err());
        let f = split("type=sha, format=long", 10).unwrap();
        assert_eq!(f[1].span, Span::new(20, 31));
    }
}
