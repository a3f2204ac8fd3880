//! A YAML document as a tree of nodes with byte spans, built from saphyr-parser's events.
//!
//! Scalars keep their style so typing follows the YAML 1.2 core schema (a quoted `"true"` is a
//! string, a plain `true` a boolean; `on` is a plain string, not YAML 1.1's boolean). Anchors
//! and aliases are resolved; duplicate keys are errors.

use std::borrow::Cow;
use std::collections::HashMap;

use drydock_diagnostics::{Diagnostic, Span};
use saphyr_parser::{Event, Parser, ScalarStyle};

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub value: String,
    /// Plain (unquoted, not a block scalar).
    pub plain: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>, Span),
    Map(Vec<(Scalar, Node)>, Span),
}

impl Node {
    pub fn span(&self) -> Span {
        match self {
            Node::Scalar(s) => s.span,
            Node::Seq(_, s) | Node::Map(_, s) => *s,
        }
    }

    /// A plain `null`, `~` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(s) if s.plain && matches!(s.value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Node::Scalar(s) if !s.plain => "a string",
            Node::Scalar(s) => match s.value.as_str() {
                "" | "~" | "null" | "Null" | "NULL" => "null",
                "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => "a boolean",
                v if v.parse::<f64>().is_ok() => "a number",
                _ => "a string",
            },
            Node::Seq(..) => "a list",
            Node::Map(..) => "a mapping",
        }
    }
}

/// Byte offsets of every char index (saphyr reports positions in chars).
struct CharMap(Vec<usize>);

impl CharMap {
    fn new(src: &str) -> Self {
        let mut v: Vec<usize> = src.char_indices().map(|(i, _)| i).collect();
        v.push(src.len());
        CharMap(v)
    }
    fn byte(&self, ch: usize) -> usize {
        self.0
            .get(ch)
            .copied()
            .unwrap_or_else(|| self.0.last().copied().unwrap_or(0))
    }
}

enum Frame {
    Seq(Vec<Node>, usize, usize),
    Map(Vec<(Scalar, Node)>, Option<Scalar>, usize, usize),
}

/// Parses one YAML document. An empty document is an empty mapping.
pub fn parse(src: &str) -> Result<Node, Diagnostic> {
    let cm = CharMap::new(src);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut docs = 0;
    for item in Parser::new_from_str(src) {
        let (ev, sp) = item.map_err(|e| {
            let at = cm.byte(e.marker().index());
            Diagnostic::error(
                format!("invalid YAML: {}", e.info()),
                Span::new(at, at + usize::from(at < src.len())),
            )
            .with_code("yaml")
        })?;
        let span = Span::new(cm.byte(sp.start.index()), cm.byte(sp.end.index()));
        let (node, anchor) = match ev {
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    return Err(Diagnostic::error("only one YAML document is allowed", span)
                        .with_code("yaml")
                        .with_hint("remove the second `---`"));
                }
                continue;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => continue,
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(Vec::new(), span.start, anchor));
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(Vec::new(), None, span.start, anchor));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, start, anchor)) => {
                    let end = items.last().map_or(span.end, |n| n.span().end.max(start));
                    (Node::Seq(items, Span::new(start, end.max(start))), anchor)
                }
                _ => {
                    return Err(
                        Diagnostic::error("unbalanced YAML sequence", span).with_code("yaml")
                    );
                }
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(items, _, start, anchor)) => {
                    let end = items
                        .last()
                        .map_or(span.end, |(_, n)| n.span().end.max(start));
                    (Node::Map(items, Span::new(start, end.max(start))), anchor)
                }
                _ => {
                    return Err(
                        Diagnostic::error("unbalanced YAML mapping", span).with_code("yaml")
                    );
                }
            },
            Event::Scalar(value, style, anchor, _) => {
                let plain = matches!(style, ScalarStyle::Plain);
                let value = match value {
                    Cow::Borrowed(s) => s.to_string(),
                    Cow::Owned(s) => s,
                };
                (Node::Scalar(Scalar { value, plain, span }), anchor)
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(n) => (n.clone(), 0),
                None => return Err(Diagnostic::error("unknown YAML alias", span).with_code("yaml")),
            },
        };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items, ..)) => items.push(node),
            Some(Frame::Map(items, pending, ..)) => match pending.take() {
                None => match node {
                    Node::Scalar(s) => {
                        if let Some((first, _)) = items.iter().find(|(k, _)| k.value == s.value) {
                            return Err(Diagnostic::error(
                                format!("duplicate key `{}`", s.value),
                                s.span,
                            )
                            .with_code("duplicate-key")
                            .with_secondary(first.span, "first defined here"));
                        }
                        *pending = Some(s);
                    }
                    other => {
                        return Err(Diagnostic::error(
                            "mapping keys must be plain strings",
                            other.span(),
                        )
                        .with_code("yaml"));
                    }
                },
                Some(key) => items.push((key, node)),
            },
        }
    }
    Ok(match root {
        Some(n) if n.is_null() => Node::Map(Vec::new(), n.span()),
        Some(n) => n,
        None => Node::Map(Vec::new(), Span::point(0)),
    })
}

/// Maps an offset inside a scalar's *value* to a byte offset in the source, by walking the
/// source text of the scalar alongside the value (quotes, escapes, indentation and folding are
/// skipped). Exact for plain and single-line quoted scalars; close for block scalars.
pub fn value_offset(src: &str, scalar: &Scalar, off: usize) -> usize {
    let Some(text) = src.get(scalar.span.range()) else {
        return scalar.span.start;
    };
    if text == scalar.value {
        return scalar.span.start + off.min(text.len());
    }
    // quoted single-line without escapes
    if text.len() == scalar.value.len() + 2
        && text.get(1..text.len() - 1) == Some(scalar.value.as_str())
    {
        return scalar.span.start + 1 + off.min(scalar.value.len());
    }
    let sb = text.as_bytes();
    let mut p = 0usize;
    // skip a leading quote or block indicator line
    if text.starts_with(['\'', '"']) {
        p = 1;
    } else if text.starts_with(['|', '>']) {
        p = text.find('\n').map_or(text.len(), |i| i + 1);
    }
    for (i, c) in scalar.value.char_indices() {
        if i >= off {
            break;
        }
        let mut buf = [0u8; 4];
        let cb = c.encode_utf8(&mut buf).as_bytes();
        // advance p to the next occurrence of c (or, for whitespace, to any whitespace)
        while p < sb.len() {
            if sb[p..].starts_with(cb) || (c.is_whitespace() && (sb[p] as char).is_whitespace()) {
                break;
            }
            p += 1;
        }
        p = (p + cb.len()).min(sb.len());
    }
    // then skip indentation/escape noise up to the next value char
    if let Some(c) = scalar.value.get(off..).and_then(|s| s.chars().next()) {
        let mut buf = [0u8; 4];
        let cb = c.encode_utf8(&mut buf).as_bytes();
        let mut q = p;
        while q < sb.len() && !sb[q..].starts_with(cb) {
            q += 1;
        }
        if q < sb.len() {
            p = q;
        }
    }
    while p < text.len() && !text.is_char_boundary(p) {
        p += 1;
    }
    scalar.span.start + p.min(text.len())
}

/// A span inside a scalar's value mapped into the source.
pub fn value_span(src: &str, scalar: &Scalar, inner: Span) -> Span {
    let start = value_offset(src, scalar, inner.start);
    let end = value_offset(src, scalar, inner.end).max(start);
    Span::new(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_bytes() {
        let src = "a: é\nb: [x, 'y']\nc: |\n  line ${{ x }}\n";
        let Node::Map(items, _) = parse(src).unwrap() else {
            panic!()
        };
        assert_eq!(items[0].0.span.slice(src), Some("a"));
        assert_eq!(items[0].1.span().slice(src), Some("é"));
        let Node::Seq(v, _) = &items[1].1 else {
            panic!()
        };
        assert_eq!(v[1].span().slice(src), Some("'y'"));
        let Node::Scalar(block) = &items[2].1 else {
            panic!()
        };
        assert_eq!(block.value, "line ${{ x }}\n");
        let at = block.value.find("x }").unwrap();
        assert_eq!(
            &src[value_offset(src, block, at)..value_offset(src, block, at) + 1],
            "x"
        );
    }

    #[test]
    fn duplicate_keys_and_errors() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("duplicate key"));
        let e = parse("a: [1, 2\n").unwrap_err();
        assert_eq!(e.code.as_deref(), Some("yaml"));
        assert!(matches!(parse("").unwrap(), Node::Map(..)));
    }

    #[test]
    fn aliases_resolve() {
        let Node::Map(items, _) = parse("a: &x [1]\nb: *x\n").unwrap() else {
            panic!()
        };
        assert!(matches!(&items[1].1, Node::Seq(v, _) if v.len() == 1));
    }

    #[test]
    fn quoted_offsets() {
        let src = "k: \"a ${{ b }}\"\n";
        let Node::Map(items, _) = parse(src).unwrap() else {
            panic!()
        };
        let Node::Scalar(s) = &items[0].1 else {
            panic!()
        };
        let o = value_offset(src, s, 2);
        assert_eq!(&src[o..o + 3], "${{");
    }
}
