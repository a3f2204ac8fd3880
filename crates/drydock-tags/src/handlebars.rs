//! The small part of Handlebars that metadata-action's attributes use: `{{name}}` and
//! `{{name 'arg' key='value'}}`. No blocks, no escaping.

use drydock_diagnostics::Span;

use crate::error::TagsError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Var {
    pub name: String,
    pub args: Vec<String>,
    pub kwargs: Vec<(String, String)>,
    /// Span of the whole `{{ ... }}` (relative to the offset given to [`parse`]).
    pub span: Span,
}

impl Var {
    pub fn kwarg(&self, key: &str) -> Option<&str> {
        self.kwargs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) fn parse(text: &str, offset: usize) -> Result<Vec<Part>, TagsError> {
    let mut parts = Vec::new();
    let mut pos = 0;
    while let Some(rel) = text[pos..].find("{{") {
        let open = pos + rel;
        if open > pos {
            parts.push(Part::Text(text[pos..open].to_string()));
        }
        let Some(close_rel) = text[open + 2..].find("}}") else {
            return Err(TagsError::new(
                "`{{` is not closed by `}}`",
                Span::new(offset + open, offset + text.len()),
            ));
        };
        let close = open + 2 + close_rel;
        let span = Span::new(offset + open, offset + close + 2);
        parts.push(Part::Var(parse_var(&text[open + 2..close], span)?));
        pos = close + 2;
    }
    if pos < text.len() {
        parts.push(Part::Text(text[pos..].to_string()));
    }
    Ok(parts)
}

fn parse_var(inner: &str, span: Span) -> Result<Var, TagsError> {
    let mut words = Vec::new();
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let mut word = String::new();
        while i < b.len() && !b[i].is_ascii_whitespace() {
            if b[i] == b'\'' || b[i] == b'"' {
                let q = b[i];
                let Some(end) = inner[i + 1..].bytes().position(|c| c == q) else {
                    return Err(TagsError::new("unterminated string in `{{ }}`", span));
                };
                word.push('\u{0}'); // marks "quoted" so a quoted word is never a name
                word.push_str(&inner[i + 1..i + 1 + end]);
                i += end + 2;
            } else {
                let ch = inner[i..].chars().next().unwrap_or(' ');
                word.push(ch);
                i += ch.len_utf8();
            }
        }
        words.push(word);
    }
    let mut it = words.into_iter();
    let Some(name) = it
        .next()
        .filter(|n| !n.starts_with('\u{0}') && !n.is_empty())
    else {
        return Err(TagsError::new("expected a name in `{{ }}`", span));
    };
    let mut var = Var {
        name,
        args: Vec::new(),
        kwargs: Vec::new(),
        span,
    };
    for w in it {
        if let Some(v) = w.strip_prefix('\u{0}') {
            var.args.push(v.to_string());
        } else if let Some((k, v)) = w.split_once('=') {
            var.kwargs
                .push((k.to_string(), v.trim_start_matches('\u{0}').to_string()));
        } else {
            return Err(
                TagsError::new(format!("unexpected '{w}' in `{{{{ }}}}`"), span)
                    .hint("arguments are quoted: {{date 'YYYYMMDD' tz='Asia/Tokyo'}}"),
            );
        }
    }
    Ok(var)
}

/// Renders parts, asking `resolve` for each variable.
pub(crate) fn render(
    parts: &[Part],
    resolve: &mut dyn FnMut(&Var) -> Result<String, TagsError>,
) -> Result<String, TagsError> {
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Var(v) => out.push_str(&resolve(v)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vars_with_arguments() {
        let p = parse(
            "v{{major}}.{{ minor }}-{{date 'YYYYMMDD' tz='Asia/Tokyo'}}",
            0,
        )
        .unwrap();
        assert_eq!(p.len(), 6);
        let Part::Var(d) = &p[5] else { panic!() };
        assert_eq!(d.name, "date");
        assert_eq!(d.args, ["YYYYMMDD"]);
        assert_eq!(d.kwarg("tz"), Some("Asia/Tokyo"));
        assert!(parse("{{x", 0).is_err());
        assert!(parse("{{ }}", 0).is_err());
        assert!(parse("{{date 'a}}", 0).is_err());
    }
}
