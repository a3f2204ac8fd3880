//! BuildKit's three ways of cutting an instruction's text into words, with byte ranges:
//! flags (`extractBuilderFlags`), quote-aware raw words (`parseWords`) and plain whitespace
//! splitting (`parseStringsWhitespaceDelimited`).

use std::ops::Range;

/// Go's `unicode.IsSpace`.
pub fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    ) || (c as u32 > 0xff && c.is_whitespace())
}

/// BuildKit's `reWhitespace`: `[\t\v\f\r ]+`.
pub fn is_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// A flag word with quotes and escapes removed, and the range of its raw text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFlag {
    pub text: String,
    pub range: Range<usize>,
}

/// Reads the leading `--flag` words of `line`; returns them and the offset where the arguments
/// start (`line.len()` when there are none).
pub fn extract_flags(line: &str, escape: char) -> (Vec<RawFlag>, usize) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut flags = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut start = 0;
    let mut blank_ok = false;
    let mut it = line.char_indices().peekable();
    while let Some((pos, ch)) = it.next() {
        match phase {
            Phase::Spaces => {
                if is_space(ch) {
                    continue;
                }
                if !line[pos..].starts_with("--") {
                    return (flags, pos);
                }
                phase = Phase::Word;
                start = pos;
                word.clear();
                blank_ok = false;
                word.push(ch);
            }
            Phase::Word => {
                if is_space(ch) {
                    if word == "--" {
                        return (flags, pos);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(RawFlag {
                            text: std::mem::take(&mut word),
                            range: start..pos,
                        });
                    }
                    phase = Phase::Spaces;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                    continue;
                }
                if ch == escape {
                    match it.next() {
                        Some((_, c)) => word.push(c),
                        None => continue,
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                    continue;
                }
                if ch == escape {
                    match it.next() {
                        Some((_, c)) => word.push(c),
                        None => {
                            phase = Phase::Word;
                            continue;
                        }
                    }
                    continue;
                }
                word.push(ch);
            }
        }
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        flags.push(RawFlag {
            text: word,
            range: start..line.len(),
        });
    }
    (flags, line.len())
}

/// Quote-aware split that keeps quotes and escapes in the words (BuildKit's `parseWords`, used
/// for ENV, LABEL and ARG). Returns the ranges; the raw word is the slice of `rest`.
pub fn parse_words(rest: &str, escape: char) -> Vec<Range<usize>> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut start = 0;
    let mut end = 0;
    let mut len = 0usize;
    let mut blank_ok = false;
    let mut it = rest.char_indices().peekable();
    while let Some((pos, ch)) = it.next() {
        let next_end = |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
            it.peek().map_or(rest.len(), |(p, _)| *p)
        };
        match phase {
            Phase::Spaces => {
                if is_space(ch) {
                    continue;
                }
                phase = Phase::Word;
                start = pos;
                end = pos;
                len = 0;
                blank_ok = false;
            }
            Phase::Word | Phase::Quote(_) => {}
        }
        match phase {
            Phase::Word => {
                if is_space(ch) {
                    if blank_ok || len > 0 {
                        words.push(start..end);
                    }
                    phase = Phase::Spaces;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if it.peek().is_none() {
                        continue;
                    }
                    it.next();
                }
                end = next_end(&mut it);
                len += 1;
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                }
                if ch == escape && q != '\'' {
                    if it.peek().is_none() {
                        phase = Phase::Word;
                        continue;
                    }
                    it.next();
                }
                end = next_end(&mut it);
                len += 1;
            }
            Phase::Spaces => {}
        }
    }
    if phase != Phase::Spaces && (blank_ok || len > 0) {
        words.push(start..end);
    }
    words
}

/// Splits on runs of `[\t\v\f\r ]` without regard to quotes.
pub fn split_ws(rest: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in rest.char_indices() {
        if is_ws(c) {
            if let Some(s) = start.take() {
                out.push(s..i);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(s..rest.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str, r: &[Range<usize>]) -> Vec<String> {
        r.iter().map(|r| s[r.clone()].to_string()).collect()
    }

    #[test]
    fn flags_stop_at_first_argument() {
        let line = r#"--from=build --chown="a b" src dst"#;
        let (flags, rest) = extract_flags(line, '\\');
        assert_eq!(
            flags.iter().map(|f| f.text.as_str()).collect::<Vec<_>>(),
            ["--from=build", "--chown=a b"]
        );
        assert_eq!(flags[1].range, 13..26);
        assert_eq!(&line[rest..], "src dst");
        let (flags, rest) = extract_flags("-- --x a", '\\');
        assert!(flags.is_empty());
        assert_eq!(rest, 2);
        let (flags, rest) = extract_flags("--link", '\\');
        assert_eq!(flags[0].text, "--link");
        assert_eq!(rest, 6);
    }

    #[test]
    fn raw_words_keep_quotes() {
        let s = r#"A="x y" B=c\ d  'e f'"#;
        assert_eq!(
            texts(s, &parse_words(s, '\\')),
            [r#"A="x y""#, r"B=c\ d", "'e f'"]
        );
        let s = "A=b\\";
        assert_eq!(texts(s, &parse_words(s, '\\')), ["A=b"]);
        let s = "x ''";
        assert_eq!(texts(s, &parse_words(s, '\\')), ["x", "''"]);
    }

    #[test]
    fn whitespace_split_ignores_quotes() {
        let s = "\"a b\"  c";
        assert_eq!(texts(s, &split_ws(s)), ["\"a", "b\"", "c"]);
    }
}
