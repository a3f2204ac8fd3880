use std::fmt::Write as _;

use crate::line_index::floor_char_boundary;
use crate::{Diagnostic, LineIndex};

/// Renders one diagnostic as plain text:
///
/// ```text
/// error[UndefinedVar]: usage of undefined variable '$FOO'
///  --> Dockerfile:3:10
///   |
/// 3 | RUN echo $FOO
///   |          ^^^^ not declared by ARG or ENV
///   = hint: declare it with `ARG FOO` before use
/// ```
///
/// The output has no colour and no trailing spaces, so it is stable for snapshot tests.
pub fn render(file: &str, source: &str, diag: &Diagnostic) -> String {
    let index = LineIndex::new(source);
    let mut out = String::new();
    render_into(&mut out, file, source, &index, diag);
    out
}

/// Renders several diagnostics of one file, separated by blank lines.
pub fn render_all(file: &str, source: &str, diags: &[Diagnostic]) -> String {
    let index = LineIndex::new(source);
    let mut out = String::new();
    for (i, d) in diags.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        render_into(&mut out, file, source, &index, d);
    }
    out
}

fn render_into(out: &mut String, file: &str, source: &str, index: &LineIndex, d: &Diagnostic) {
    let pos = index.line_col(source, d.span.start);
    let _ = match &d.code {
        Some(code) => writeln!(out, "{}[{}]: {}", d.severity.as_str(), code, d.message),
        None => writeln!(out, "{}: {}", d.severity.as_str(), d.message),
    };
    let gutter = pos.line.to_string().len().max(
        d.secondary
            .iter()
            .map(|l| index.line_col(source, l.span.start).line.to_string().len())
            .max()
            .unwrap_or(0),
    );
    let pad = " ".repeat(gutter);
    let _ = writeln!(out, "{pad}--> {}:{}:{}", file, pos.line, pos.col);
    let _ = writeln!(out, "{pad} |");
    snippet(
        out,
        source,
        index,
        gutter,
        d.span.start,
        d.span.end,
        '^',
        d.label.as_deref(),
    );
    for label in &d.secondary {
        snippet(
            out,
            source,
            index,
            gutter,
            label.span.start,
            label.span.end,
            '-',
            Some(&label.message),
        );
    }
    for hint in &d.hints {
        let _ = writeln!(out, "{pad} = hint: {hint}");
    }
}

#[allow(clippy::too_many_arguments)]
fn snippet(
    out: &mut String,
    source: &str,
    index: &LineIndex,
    gutter: usize,
    start: usize,
    end: usize,
    mark: char,
    label: Option<&str>,
) {
    let start = floor_char_boundary(source, start);
    let end = floor_char_boundary(source, end.max(start));
    let line = index.line_of(start);
    let range = index.line_range(source, line);
    let text = &source[range.clone()];
    // Tabs would misalign the caret; show them as single spaces.
    let shown: String = text
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let _ = writeln!(out, "{:>gutter$} | {}", line + 1, shown.trim_end());
    let col = source[range.start..start.max(range.start)].chars().count();
    // A span running past the end of its first line is underlined to the end of that line.
    let stop = end.min(range.end).max(start);
    let width = source[start.min(range.end)..stop].chars().count().max(1);
    let mut caret = format!(
        "{:gutter$} | {}{}",
        "",
        " ".repeat(col),
        mark.to_string().repeat(width)
    );
    if let Some(label) = label.filter(|l| !l.is_empty()) {
        caret.push(' ');
        caret.push_str(label);
    }
    let _ = writeln!(out, "{}", caret.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Span;

    #[test]
    fn renders_caret_label_and_hint() {
        let src = "FROM busybox\nCOPY --from=${IMG} /a /b\n";
        let start = src.find("${IMG}").unwrap();
        let d = Diagnostic::error("`--from` is not expanded", Span::new(start, start + 6))
            .with_code("from-not-expanded")
            .with_label("variables are not substituted here")
            .with_hint("name the stage instead: `FROM ${IMG} AS img` then `COPY --from=img`");
        insta::assert_snapshot!(render("Dockerfile", src, &d), @r"
        error[from-not-expanded]: `--from` is not expanded
         --> Dockerfile:2:13
          |
        2 | COPY --from=${IMG} /a /b
          |             ^^^^^^ variables are not substituted here
          = hint: name the stage instead: `FROM ${IMG} AS img` then `COPY --from=img`
        ");
    }

    #[test]
    fn empty_span_at_end_of_file_gets_one_caret() {
        let src = "RUN \\";
        let d = Diagnostic::error("unexpected end of file", Span::point(src.len()));
        let out = render("Dockerfile", src, &d);
        assert!(out.contains("1 | RUN \\\n  |      ^"), "{out}");
    }

    #[test]
    fn secondary_labels_are_shown() {
        let src = "FROM a AS x\nFROM b AS x\n";
        let d = Diagnostic::error("duplicate stage name 'x'", Span::new(22, 23))
            .with_secondary(Span::new(10, 11), "first defined here");
        let out = render("Dockerfile", src, &d);
        assert!(
            out.contains("1 | FROM a AS x\n  |           - first defined here"),
            "{out}"
        );
    }
}
