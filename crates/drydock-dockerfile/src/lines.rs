//! Physical lines to logical lines: parser directives, comments, continuations and heredoc
//! bodies, keeping a map from every logical byte back to the source.

use drydock_diagnostics::Span;

use crate::words::is_space;

/// One physical line: its text without the line terminator, and where it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub text: &'a str,
    pub start: usize,
}

/// Splits `source` into lines, dropping `\n`/`\r\n` terminators (all trailing `\r`/`\n`, as Go's
/// `bytes.TrimRight(line, "\r\n")` does) and a UTF-8 byte-order mark on the first line.
pub(crate) fn physical_lines(source: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for raw in source.split_inclusive('\n') {
        let mut text = raw.trim_end_matches(['\r', '\n']);
        let mut start = offset;
        if offset == 0
            && let Some(rest) = text.strip_prefix('\u{feff}')
        {
            text = rest;
            start += 3;
        }
        out.push(Line { text, start });
        offset += raw.len();
    }
    out
}

/// Text joined from pieces of several physical lines, with the way back to source offsets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Logical {
    pub text: String,
    /// (logical start, source start) of every piece, in order.
    segs: Vec<(usize, usize)>,
}

impl Logical {
    pub fn push(&mut self, piece: &str, source_start: usize) {
        if piece.is_empty() {
            return;
        }
        self.segs.push((self.text.len(), source_start));
        self.text.push_str(piece);
    }

    fn seg(&self, pos: usize) -> (usize, usize) {
        match self.segs.binary_search_by(|(l, _)| l.cmp(&pos)) {
            Ok(i) => self.segs[i],
            Err(0) => self.segs.first().copied().unwrap_or((0, 0)),
            Err(i) => self.segs[i - 1],
        }
    }

    /// Source offset of logical offset `pos` (the start of a range).
    pub fn src(&self, pos: usize) -> usize {
        let (l, s) = self.seg(pos);
        s + pos.saturating_sub(l)
    }

    /// Source offset just after logical offset `pos - 1` (the end of a range).
    pub fn src_end(&self, pos: usize) -> usize {
        if pos == 0 {
            return self.src(0);
        }
        let (l, s) = self.seg(pos - 1);
        s + (pos - l)
    }

    pub fn span(&self, start: usize, end: usize) -> Span {
        if end <= start {
            return Span::point(self.src(start));
        }
        Span::new(self.src(start), self.src_end(end))
    }
}

/// Go's `unicode.IsSpace`-based left trim.
pub(crate) fn trim_leading_ws(s: &str) -> &str {
    s.trim_start_matches(is_space)
}

pub(crate) fn is_comment(line: &str) -> bool {
    trim_leading_ws(line).starts_with('#')
}

/// `# name = value` at the top of the file. Returns (name, value, value's byte range in `line`).
pub(crate) fn directive(line: &str) -> Option<(String, &str, std::ops::Range<usize>)> {
    let is_re_space = |c: char| matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ');
    let rest = line.strip_prefix('#')?;
    let after_ws = rest.trim_start_matches(is_re_space);
    let name_len = after_ws
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(after_ws.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let name = &after_ws[..name_len];
    let after_name = after_ws[name_len..].trim_start_matches(is_re_space);
    let value_part = after_name.strip_prefix('=')?;
    let value = value_part
        .trim_start_matches(is_re_space)
        .trim_end_matches(is_re_space);
    if value.is_empty() {
        return None;
    }
    let start = line.len() - value_part.trim_start_matches(is_re_space).len();
    Some((name.to_ascii_lowercase(), value, start..start + value.len()))
}

/// Removes the escape character and trailing blanks at the end of a line, if it continues.
pub(crate) fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(rest) => (rest, false),
        None => (line, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_syntax() {
        assert_eq!(
            directive("# escape=`").map(|d| (d.0, d.1)),
            Some(("escape".into(), "`"))
        );
        assert_eq!(
            directive("#SYNTAX = a/b:1  ").map(|d| (d.0, d.1)),
            Some(("syntax".into(), "a/b:1"))
        );
        assert!(directive("# just a comment").is_none());
        assert!(directive("# x=").is_none());
        let (_, _, r) = directive("# check = skip=all").unwrap();
        assert_eq!(r, 10..18);
    }

    #[test]
    fn continuation_trims() {
        assert_eq!(trim_continuation("a \\  ", '\\'), ("a ", false));
        assert_eq!(trim_continuation("a", '\\'), ("a", true));
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
    }

    #[test]
    fn logical_map() {
        let mut l = Logical::default();
        l.push("RUN a ", 0);
        l.push("b", 10);
        assert_eq!(l.text, "RUN a b");
        assert_eq!(l.src(6), 10);
        assert_eq!(l.src_end(6), 6);
        assert_eq!(l.span(4, 7), Span::new(4, 11));
    }
}
