//! The Dockerfile parser: text in, [`Dockerfile`] with spans and diagnostics out. Never panics.

use drydock_diagnostics::{Diagnostic, Span};

use crate::ast::*;
use crate::flags::{self, Duration, NetworkMode, SecurityMode};
use crate::json::{JsonArgs, parse_json_args};
use crate::lines::{
    Logical, directive, is_comment, physical_lines, trim_continuation, trim_leading_ws,
};
use crate::suggest;
use crate::words::{extract_flags, is_space, is_ws, parse_words, split_ws};

/// Parses a Dockerfile. Problems are returned in [`Dockerfile::diagnostics`]; instructions that
/// could not be understood are kept with [`Command::Invalid`] so later checks still see them.
pub fn parse(source: &str) -> Dockerfile {
    let lines = physical_lines(source);
    let mut df = Dockerfile::default();
    let mut escape = '\\';

    // Parser directives: only at the very top, until the first line that is not one.
    let mut seen: Vec<String> = Vec::new();
    for line in &lines {
        let text = trim_leading_ws(line.text);
        let lead = line.text.len() - text.len();
        let Some((name, value, range)) = directive(text) else {
            break;
        };
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            break;
        }
        let span = Span::new(
            line.start + lead + range.start,
            line.start + lead + range.end,
        );
        if seen.contains(&name) {
            df.diagnostics.push(
                Diagnostic::error(
                    format!("only one {name} parser directive can be used"),
                    span,
                )
                .with_code("duplicate-directive")
                .with_label("repeated here")
                .with_hint("parser directives may appear once each, at the top of the file"),
            );
            continue;
        }
        seen.push(name.clone());
        let word = Word::new(value, span);
        match name.as_str() {
            "escape" => {
                if value == "\\" || value == "`" {
                    escape = value.chars().next().unwrap_or('\\');
                    df.directives.escape = Some(word);
                } else {
                    df.diagnostics.push(
                        Diagnostic::error(
                            format!("invalid escape token '{value}' does not match ` or \\"),
                            span,
                        )
                        .with_code("invalid-escape")
                        .with_hint("use `# escape=\\` (the default) or `# escape=`` ` (backtick)"),
                    );
                }
            }
            "syntax" => df.directives.syntax = Some(word),
            _ => df.directives.check = Some(word),
        }
    }

    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let text = trim_leading_ws(line.text);
        let lead = line.text.len() - text.len();
        if is_comment(text) {
            let body = &text[1..];
            let t = body.trim_matches(is_space);
            let start =
                line.start + lead + 1 + (body.len() - body.trim_start_matches(is_space).len());
            df.comments
                .push(Word::new(t, Span::new(start, start + t.len())));
            continue;
        }
        let start_line = i;
        let mut logical = Logical::default();
        let (piece, mut end_of_line) = trim_continuation(text, escape);
        if end_of_line && piece.trim_matches(is_space).is_empty() {
            continue;
        }
        logical.push(piece, line.start + lead);
        let mut last_end = line.start + line.text.len();
        let mut empty_continuation: Option<Span> = None;
        while !end_of_line && i < lines.len() {
            let next = lines[i];
            i += 1;
            if is_comment(next.text) {
                continue;
            }
            if trim_leading_ws(next.text).is_empty() {
                empty_continuation.get_or_insert(Span::point(next.start));
                continue;
            }
            let (piece, eol) = trim_continuation(next.text, escape);
            end_of_line = eol;
            logical.push(piece, next.start);
            last_end = next.start + next.text.len();
        }
        if let Some(span) = empty_continuation {
            df.diagnostics.push(
                Diagnostic::warning("empty continuation line", span)
                    .with_code("NoEmptyContinuation")
                    .with_label("this blank line is inside a continued instruction")
                    .with_hint("remove the blank line; empty continuation lines will become errors in a future BuildKit release"),
            );
        }
        let mut p = InstrParser {
            l: &logical,
            escape,
            diags: &mut df.diagnostics,
        };
        let Some(mut instr) = p.instruction(0) else {
            continue;
        };
        instr.start_line = start_line;
        let mut end_line = i;
        // Heredoc bodies follow the instruction's last line.
        if matches!(instr.keyword, Keyword::Run | Keyword::Copy | Keyword::Add)
            && logical.text.contains("<<")
        {
            for (name_word, name, chomp, expand) in heredoc_words(&logical, &mut df.diagnostics) {
                let body_start = lines.get(i).map_or(source.len(), |l| l.start);
                let mut content = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let candidate = if chomp {
                        l.text.trim_start_matches('\t')
                    } else {
                        l.text
                    };
                    if candidate == name {
                        terminated = true;
                        last_end = l.start + l.text.len();
                        break;
                    }
                    content.push_str(l.text);
                    content.push('\n');
                    last_end = l.start + l.text.len();
                }
                end_line = i;
                let body_end = if terminated {
                    lines.get(i - 1).map_or(source.len(), |l| l.start)
                } else {
                    source.len()
                };
                if !terminated {
                    df.diagnostics.push(
                        Diagnostic::error(format!("unterminated heredoc {name:?}"), name_word)
                            .with_code("unterminated-heredoc")
                            .with_label("opened here")
                            .with_hint(format!(
                                "end the document with a line containing only `{name}`{}",
                                if chomp { " (leading tabs allowed)" } else { "" }
                            )),
                    );
                }
                instr.heredocs.push(Heredoc {
                    name,
                    span: name_word,
                    content,
                    content_span: Span::new(body_start, body_end.max(body_start)),
                    chomp,
                    expand,
                });
            }
            if let Command::Copy(c) | Command::Add(c) = &instr.command {
                check_copy_heredocs(c, &instr.heredocs, instr.keyword, &mut df.diagnostics);
            }
        }
        instr.end_line = end_line;
        instr.span = Span::new(instr.span.start, last_end.max(instr.span.start));
        df.instructions.push(instr);
    }
    df
}

fn check_copy_heredocs(c: &Copy, docs: &[Heredoc], kw: Keyword, diags: &mut Vec<Diagnostic>) {
    if c.dest.text.starts_with("<<") && docs.iter().any(|d| d.span == c.dest.span) {
        diags.push(
            Diagnostic::error(
                format!("{kw} cannot accept a heredoc as a destination"),
                c.dest.span,
            )
            .with_code("invalid-heredoc")
            .with_hint(format!(
                "write the destination path last: `{kw} <<EOF /path/to/file`"
            )),
        );
    }
}

/// Finds `<<WORD` heredoc markers among the shell words of a logical line.
fn heredoc_words(l: &Logical, diags: &mut Vec<Diagnostic>) -> Vec<(Span, String, bool, bool)> {
    let mut out = Vec::new();
    for r in shell_words_raw(&l.text) {
        let w = &l.text[r.clone()];
        let Some(rest) = w.strip_prefix("<<") else {
            continue;
        };
        let (chomp, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if rest.is_empty() || rest.contains('<') {
            continue;
        }
        let span = l.span(r.start, r.end);
        let first = rest.chars().next().unwrap_or(' ');
        if first == '\'' || first == '"' {
            if rest.len() < 2 || !rest.ends_with(first) {
                diags.push(
                    Diagnostic::error("quoted heredoc quotes do not match", span)
                        .with_code("invalid-heredoc")
                        .with_hint(format!(
                            "close the delimiter with the same quote: <<{first}EOF{first}"
                        )),
                );
                // Still read the body, so its lines are not taken for instructions.
                let name = rest
                    .split(char::is_whitespace)
                    .next()
                    .unwrap_or(rest)
                    .trim_matches(|c| c == '\'' || c == '"')
                    .to_string();
                out.push((span, name, chomp, false));
                continue;
            }
            out.push((span, rest[1..rest.len() - 1].to_string(), chomp, false));
        } else {
            out.push((span, unescape(rest), chomp, true));
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Shell words with quotes and escapes kept (`\` is always the escape here, as in BuildKit's
/// heredoc detection).
fn shell_words_raw(s: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' && q == '"' {
                it.next();
            }
            continue;
        }
        if c == ' ' || c == '\t' {
            if let Some(st) = start.take() {
                out.push(st..i);
            }
            continue;
        }
        if start.is_none() {
            start = Some(i);
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '\\' => {
                it.next();
            }
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push(st..s.len());
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Bool,
    Str,
    Strs,
}

fn flag_specs(kw: Keyword) -> &'static [(&'static str, FlagKind)] {
    use FlagKind::*;
    match kw {
        Keyword::From => &[("platform", Str)],
        Keyword::Run => &[("mount", Strs), ("network", Str), ("security", Str)],
        Keyword::Copy => &[
            ("from", Str),
            ("chown", Str),
            ("chmod", Str),
            ("link", Bool),
            ("parents", Bool),
            ("exclude", Strs),
        ],
        Keyword::Add => &[
            ("chown", Str),
            ("chmod", Str),
            ("link", Bool),
            ("keep-git-dir", Bool),
            ("checksum", Str),
            ("exclude", Strs),
        ],
        Keyword::Healthcheck => &[
            ("interval", Str),
            ("timeout", Str),
            ("start-period", Str),
            ("start-interval", Str),
            ("retries", Str),
        ],
        _ => &[],
    }
}

struct InstrParser<'a> {
    l: &'a Logical,
    escape: char,
    diags: &'a mut Vec<Diagnostic>,
}

/// Flags after validation: name -> values (bools as "true"/"false").
struct FlagSet {
    flags: Vec<Flag>,
    values: Vec<(&'static str, Word)>,
}

impl FlagSet {
    fn get(&self, name: &str) -> Option<&Word> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, w)| w)
    }
    fn all(&self, name: &str) -> Vec<Word> {
        self.values
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, w)| w.clone())
            .collect()
    }
    fn bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(|w| w.text == "true")
    }
}

impl InstrParser<'_> {
    fn span(&self, r: std::ops::Range<usize>) -> Span {
        self.l.span(r.start, r.end)
    }

    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Parses the instruction starting at logical offset `from`.
    fn instruction(&mut self, from: usize) -> Option<Instruction> {
        let text = &self.l.text[from..];
        let lead = text.len() - text.trim_start_matches(is_space).len();
        let body_start = from + lead;
        let body = self.l.text[body_start..].trim_end_matches(is_space);
        let body_end = body_start + body.len();
        if body.is_empty() {
            return None;
        }
        let kw_len = body.find(is_ws).unwrap_or(body.len());
        let kw_text = &body[..kw_len];
        let kw_span = self.span(body_start..body_start + kw_len);
        let after_kw = body[kw_len..].trim_start_matches(is_ws);
        let rest_start = body_end - after_kw.len();
        let (raw_flags, args_rel) = extract_flags(after_kw, self.escape);
        let args_start = rest_start + args_rel;
        let args_text = self.l.text[args_start.min(body_end)..body_end].to_string();
        let args_word = Word::new(
            args_text.clone(),
            self.span(args_start.min(body_end)..body_end),
        );
        let whole = self.span(body_start..body_end);
        let Some(keyword) = Keyword::parse(kw_text) else {
            let mut d = Diagnostic::error(format!("unknown instruction: {kw_text}"), kw_span)
                .with_code("unknown-instruction");
            if let Some(s) = suggest::closest(kw_text, Keyword::ALL.iter().map(|k| k.as_str())) {
                d = d.with_label(format!("did you mean {s}?"));
            } else {
                d = d.with_hint("instructions are FROM, RUN, COPY, ADD, ENV, ARG, WORKDIR, CMD, ENTRYPOINT, ...");
            }
            self.err(d);
            return None;
        };
        let mut instr = Instruction {
            keyword,
            keyword_word: Word::new(kw_text, kw_span),
            flags: Vec::new(),
            command: Command::Invalid,
            heredocs: Vec::new(),
            span: whole,
            args: args_word,
            start_line: 0,
            end_line: 0,
            original: self.l.text[body_start..body_end].to_string(),
        };
        let Some(flagset) = self.flags(keyword, &raw_flags, rest_start) else {
            return Some(instr);
        };
        instr.flags = flagset.flags.clone();
        let command = self.command(
            keyword,
            &flagset,
            args_start.min(body_end),
            body_end,
            &instr,
        );
        if let Some(c) = command {
            instr.command = c;
        }
        Some(instr)
    }

    fn flags(
        &mut self,
        kw: Keyword,
        raw: &[crate::words::RawFlag],
        base: usize,
    ) -> Option<FlagSet> {
        let specs = flag_specs(kw);
        let mut set = FlagSet {
            flags: Vec::new(),
            values: Vec::new(),
        };
        let mut ok = true;
        for f in raw {
            let span = self.span(base + f.range.start..base + f.range.end);
            let body = f.text.strip_prefix("--").unwrap_or(&f.text);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let raw_text = &self.l.text[base + f.range.start..base + f.range.end];
            let name_span = {
                let s = base + f.range.start + 2;
                self.span(s..(s + name.len()).min(base + f.range.end))
            };
            let value_span = match raw_text.find('=') {
                Some(eq) => self.span(base + f.range.start + eq + 1..base + f.range.end),
                None => span,
            };
            let Some(&(spec_name, kind)) = specs.iter().find(|(n, _)| *n == name) else {
                let mut d = Diagnostic::error(format!("unknown flag: {name}"), span)
                    .with_code("unknown-flag");
                let names = specs.iter().map(|(n, _)| *n);
                if let Some(s) = suggest::closest(name, names) {
                    d = d.with_label(format!("did you mean --{s}?"));
                } else if specs.is_empty() {
                    d = d.with_hint(format!("{kw} takes no flags"));
                } else {
                    let list: Vec<String> = specs.iter().map(|(n, _)| format!("--{n}")).collect();
                    d = d.with_hint(format!("{kw} accepts {}", list.join(", ")));
                }
                self.err(d);
                ok = false;
                continue;
            };
            if kind != FlagKind::Strs && set.values.iter().any(|(n, _)| *n == spec_name) {
                self.err(
                    Diagnostic::error(format!("duplicate flag specified: {name}"), span)
                        .with_code("duplicate-flag"),
                );
                ok = false;
                continue;
            }
            let value = match (kind, value) {
                (FlagKind::Bool, None) => "true".to_string(),
                (FlagKind::Bool, Some("")) => {
                    self.err(
                        Diagnostic::error(format!("missing a value on flag: {name}"), span)
                            .with_code("invalid-flag")
                            .with_hint(format!("write --{name} or --{name}=true|false")),
                    );
                    ok = false;
                    continue;
                }
                (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".into(),
                    "false" => "false".into(),
                    _ => {
                        self.err(
                            Diagnostic::error(
                                format!("expecting boolean value for flag {name}, not: {v}"),
                                value_span,
                            )
                            .with_code("invalid-flag"),
                        );
                        ok = false;
                        continue;
                    }
                },
                (_, None) => {
                    self.err(
                        Diagnostic::error(format!("missing a value on flag: {name}"), span)
                            .with_code("invalid-flag")
                            .with_hint(format!("write --{name}=VALUE")),
                    );
                    ok = false;
                    continue;
                }
                (_, Some(v)) => v.to_string(),
            };
            set.values
                .push((spec_name, Word::new(value.clone(), value_span)));
            set.flags.push(Flag {
                name: Word::new(name, name_span),
                value: body.contains('=').then(|| Word::new(value, value_span)),
                span,
            });
        }
        ok.then_some(set)
    }

    fn need_args(&mut self, kw: Keyword, n: usize, got: usize, at: Span, exactly: bool) -> bool {
        if (exactly && got == n) || (!exactly && got >= n) {
            return true;
        }
        let what = match (exactly, n) {
            (true, 1) => "exactly one argument".to_string(),
            (false, 1) => "at least one argument".to_string(),
            (false, 2) => "at least two arguments".to_string(),
            (_, n) => format!("{n} arguments"),
        };
        let hint = match kw {
            Keyword::Copy | Keyword::Add => format!("{kw} <src>... <dest>"),
            Keyword::From => "FROM [--platform=<platform>] <image> [AS <name>]".into(),
            Keyword::Workdir => "WORKDIR /path/to/workdir".into(),
            Keyword::User => "USER <user>[:<group>]".into(),
            Keyword::Env => "ENV <key>=<value> ...".into(),
            Keyword::Label => "LABEL <key>=<value> ...".into(),
            Keyword::Arg => "ARG <name>[=<default value>]".into(),
            Keyword::Expose => "EXPOSE <port>[/<protocol>] ...".into(),
            Keyword::Stopsignal => "STOPSIGNAL SIGTERM".into(),
            Keyword::Maintainer => "LABEL org.opencontainers.image.authors=\"name\"".into(),
            Keyword::Onbuild => "ONBUILD <INSTRUCTION>".into(),
            Keyword::Run => "RUN <command> or RUN [\"executable\", \"arg\"]".into(),
            Keyword::Shell => "SHELL [\"/bin/sh\", \"-c\"]".into(),
            _ => kw.to_string(),
        };
        self.err(
            Diagnostic::error(format!("{kw} requires {what}"), at)
                .with_code("wrong-argument-count")
                .with_hint(format!("usage: {hint}")),
        );
        false
    }

    fn words(&self, ranges: Vec<std::ops::Range<usize>>, base: usize) -> Vec<Word> {
        ranges
            .into_iter()
            .map(|r| {
                Word::new(
                    &self.l.text[base + r.start..base + r.end],
                    self.span(base + r.start..base + r.end),
                )
            })
            .collect()
    }

    /// Exec form or shell form, as `parseMaybeJSON` decides.
    fn command_line(&mut self, start: usize, end: usize) -> Option<CommandLine> {
        let text = &self.l.text[start..end];
        match parse_json_args(text) {
            JsonArgs::Strings(items) => Some(CommandLine::Exec(
                items
                    .into_iter()
                    .map(|(s, r)| Word::new(s, self.span(start + r.start..start + r.end)))
                    .collect(),
            )),
            JsonArgs::NotStrings(r) => {
                self.err(
                    Diagnostic::error(
                        "when using JSON array syntax, arrays must be comprised of strings only",
                        self.span(start + r.start..start + r.end),
                    )
                    .with_code("json-not-strings")
                    .with_label("not a string")
                    .with_hint("quote every element, e.g. [\"sleep\", \"10\"]"),
                );
                None
            }
            JsonArgs::NotJson => Some(CommandLine::Shell(Word::new(text, self.span(start..end)))),
        }
    }

    /// Exec-form list or whitespace-separated words (`parseMaybeJSONToList`).
    fn list(&mut self, start: usize, end: usize) -> Option<(Vec<Word>, bool)> {
        let text = &self.l.text[start..end];
        match parse_json_args(text) {
            JsonArgs::Strings(items) => Some((
                items
                    .into_iter()
                    .map(|(s, r)| Word::new(s, self.span(start + r.start..start + r.end)))
                    .collect(),
                true,
            )),
            JsonArgs::NotStrings(r) => {
                self.err(
                    Diagnostic::error(
                        "when using JSON array syntax, arrays must be comprised of strings only",
                        self.span(start + r.start..start + r.end),
                    )
                    .with_code("json-not-strings")
                    .with_label("not a string"),
                );
                None
            }
            JsonArgs::NotJson => Some((self.words(split_ws(text), start), false)),
        }
    }

    fn key_values(
        &mut self,
        kw: Keyword,
        start: usize,
        end: usize,
        at: Span,
    ) -> Option<Vec<KeyValue>> {
        let text = &self.l.text[start..end];
        let words = parse_words(text, self.escape);
        if words.is_empty() {
            self.need_args(kw, 1, 0, at, false);
            return None;
        }
        let first = &text[words[0].clone()];
        if !first.contains('=') {
            // Legacy `KEY value`: the value is everything after the first blank run.
            let key_end = text.find(is_ws).unwrap_or(text.len());
            let value_start =
                key_end + (text[key_end..].len() - text[key_end..].trim_start_matches(is_ws).len());
            if value_start >= text.len() {
                self.err(
                    Diagnostic::error(
                        format!("{kw} must have two arguments"),
                        self.span(start..end),
                    )
                    .with_code("wrong-argument-count")
                    .with_hint(format!("write {kw} {first}=<value>")),
                );
                return None;
            }
            return Some(vec![KeyValue {
                key: Word::new(&text[..key_end], self.span(start..start + key_end)),
                value: Word::new(&text[value_start..], self.span(start + value_start..end)),
                legacy: true,
            }]);
        }
        let mut out = Vec::new();
        for r in words {
            let w = &text[r.clone()];
            let Some(eq) = w.find('=') else {
                self.err(
                    Diagnostic::error(
                        format!(
                            "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
                        ),
                        self.span(start + r.start..start + r.end),
                    )
                    .with_code("invalid-key-value")
                    .with_hint("quote values that contain spaces: KEY=\"a b\""),
                );
                return None;
            };
            if eq == 0 {
                self.err(
                    Diagnostic::error(
                        format!("{kw} names can not be blank"),
                        self.span(start + r.start..start + r.start + 1),
                    )
                    .with_code("invalid-key-value"),
                );
                return None;
            }
            let (a, b) = (start + r.start, start + r.end);
            out.push(KeyValue {
                key: Word::new(&w[..eq], self.span(a..a + eq)),
                value: Word::new(&w[eq + 1..], self.span((a + eq + 1).min(b)..b)),
                legacy: false,
            });
        }
        Some(out)
    }

    fn command(
        &mut self,
        kw: Keyword,
        fl: &FlagSet,
        start: usize,
        end: usize,
        instr: &Instruction,
    ) -> Option<Command> {
        let text = self.l.text[start..end].to_string();
        let at = if start < end {
            self.span(start..end)
        } else {
            instr.keyword_word.span
        };
        match kw {
            Keyword::From => {
                let words = self.words(split_ws(&text), start);
                if words.len() != 1 && words.len() != 3 {
                    self.err(
                        Diagnostic::error("FROM requires either one or three arguments", at)
                            .with_code("wrong-argument-count")
                            .with_hint("usage: FROM [--platform=<platform>] <image> [AS <name>]"),
                    );
                    return None;
                }
                let mut from = From {
                    image: words[0].clone(),
                    as_keyword: None,
                    name: None,
                    platform: fl.get("platform").cloned(),
                };
                if words.len() == 3 {
                    if !words[1].text.eq_ignore_ascii_case("as") {
                        self.err(
                            Diagnostic::error(
                                format!("expected AS, found {:?}", words[1].text),
                                words[1].span,
                            )
                            .with_code("invalid-from")
                            .with_hint("usage: FROM <image> AS <name>"),
                        );
                        return None;
                    }
                    let name = &words[2];
                    let lower = name.text.to_ascii_lowercase();
                    let valid = lower.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && lower.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)
                        });
                    if !valid {
                        self.err(
                            Diagnostic::error(
                                format!("invalid name for build stage: {:?}, name can't start with a number or contain symbols", name.text),
                                name.span,
                            )
                            .with_code("invalid-stage-name")
                            .with_hint("stage names start with a letter and contain only letters, digits, '-', '_' and '.'"),
                        );
                        return None;
                    }
                    from.as_keyword = Some(words[1].clone());
                    from.name = Some(name.clone());
                }
                Some(Command::From(from))
            }
            Keyword::Run => {
                let command = self.command_line(start, end)?;
                if command.args().is_empty() && !matches!(command, CommandLine::Exec(_)) {
                    self.need_args(kw, 1, 0, at, false);
                    return None;
                }
                let mut mounts = Vec::new();
                let mut ok = true;
                let mut ssh_index = 0;
                for w in fl.all("mount") {
                    match flags::parse_mount(&w.text, ssh_index, &mut |v| Ok(v.to_string())) {
                        Ok(m) => {
                            if matches!(m, flags::Mount::Ssh { .. }) {
                                ssh_index += 1;
                            }
                            // Values with variables are checked again after expansion.
                            mounts.push(MountFlag {
                                raw: w,
                                mount: Some(m),
                            });
                        }
                        Err(e) if w.text.contains('$') => {
                            let _ = e;
                            mounts.push(MountFlag {
                                raw: w,
                                mount: None,
                            });
                        }
                        Err(e) => {
                            self.err(
                                Diagnostic::error(format!("invalid --mount: {e}"), w.span)
                                    .with_code("invalid-mount")
                                    .with_hint("e.g. --mount=type=cache,target=/root/.cache or --mount=type=secret,id=token"),
                            );
                            ok = false;
                        }
                    }
                }
                let network = match fl.get("network") {
                    None => None,
                    Some(w) => match NetworkMode::parse(&w.text) {
                        Some(n) => Some((n, w.span)),
                        None => {
                            self.err(
                                Diagnostic::error(
                                    format!("unsupported network mode {:?}", w.text),
                                    w.span,
                                )
                                .with_code("invalid-flag")
                                .with_hint("use --network=default, none or host"),
                            );
                            ok = false;
                            None
                        }
                    },
                };
                let security = match fl.get("security") {
                    None => None,
                    Some(w) => match SecurityMode::parse(&w.text) {
                        Some(s) => Some((s, w.span)),
                        None => {
                            self.err(
                                Diagnostic::error(
                                    format!("unsupported security mode {:?}", w.text),
                                    w.span,
                                )
                                .with_code("invalid-flag")
                                .with_hint("use --security=sandbox or insecure"),
                            );
                            ok = false;
                            None
                        }
                    },
                };
                ok.then_some(Command::Run(Run {
                    command,
                    mounts,
                    network,
                    security,
                }))
            }
            Keyword::Cmd => Some(Command::Cmd(self.command_line(start, end)?)),
            Keyword::Entrypoint => Some(Command::Entrypoint(self.command_line(start, end)?)),
            Keyword::Shell => match parse_json_args(&text) {
                JsonArgs::Strings(items) => {
                    if items.is_empty() {
                        self.need_args(kw, 1, 0, at, false);
                        return None;
                    }
                    Some(Command::Shell(
                        items
                            .into_iter()
                            .map(|(s, r)| Word::new(s, self.span(start + r.start..start + r.end)))
                            .collect(),
                    ))
                }
                _ => {
                    self.err(
                        Diagnostic::error("SHELL requires the arguments to be in JSON form", at)
                            .with_code("shell-not-json")
                            .with_hint("write SHELL [\"/bin/bash\", \"-c\"]"),
                    );
                    None
                }
            },
            Keyword::Label => Some(Command::Label(self.key_values(kw, start, end, at)?)),
            Keyword::Env => Some(Command::Env(self.key_values(kw, start, end, at)?)),
            Keyword::Maintainer | Keyword::User | Keyword::Workdir | Keyword::Stopsignal => {
                if text.is_empty() {
                    self.need_args(kw, 1, 0, at, true);
                    return None;
                }
                let w = Word::new(text, at);
                Some(match kw {
                    Keyword::Maintainer => Command::Maintainer(w),
                    Keyword::User => Command::User(w),
                    Keyword::Workdir => Command::Workdir(w),
                    _ => Command::Stopsignal(w),
                })
            }
            Keyword::Expose => {
                let words = self.words(split_ws(&text), start);
                if !self.need_args(kw, 1, words.len(), at, false) {
                    return None;
                }
                Some(Command::Expose(words))
            }
            Keyword::Volume => {
                let (words, _) = self.list(start, end)?;
                if !self.need_args(kw, 1, words.len(), at, false) {
                    return None;
                }
                if let Some(w) = words.iter().find(|w| w.text.trim().is_empty()) {
                    self.err(
                        Diagnostic::error("VOLUME specified can not be an empty string", w.span)
                            .with_code("invalid-volume"),
                    );
                    return None;
                }
                Some(Command::Volume(words))
            }
            Keyword::Add | Keyword::Copy => {
                let (mut words, json) = self.list(start, end)?;
                if !self.need_args(kw, 2, words.len(), at, false) {
                    return None;
                }
                let dest = words.pop()?;
                if let Some(w) = fl.get("chmod") {
                    let v = &w.text;
                    let octal = !v.is_empty()
                        && v.len() <= 4
                        && v.chars().all(|c| ('0'..='7').contains(&c));
                    if !octal && !v.contains('$') && !is_symbolic_chmod(v) {
                        self.err(
                            Diagnostic::error(format!("invalid chmod parameter: {v:?}"), w.span)
                                .with_code("invalid-flag")
                                .with_hint("use an octal mode such as --chmod=0755 or a symbolic one such as --chmod=u+x"),
                        );
                        return None;
                    }
                }
                let copy = Copy {
                    sources: words,
                    dest,
                    json,
                    from: fl.get("from").cloned(),
                    chown: fl.get("chown").cloned(),
                    chmod: fl.get("chmod").cloned(),
                    link: fl.bool("link"),
                    parents: fl.bool("parents"),
                    exclude: fl.all("exclude"),
                    keep_git_dir: fl.bool("keep-git-dir"),
                    checksum: fl.get("checksum").cloned(),
                };
                Some(if kw == Keyword::Add {
                    Command::Add(copy)
                } else {
                    Command::Copy(copy)
                })
            }
            Keyword::Arg => {
                let words = self.words(parse_words(&text, self.escape), start);
                if !self.need_args(kw, 1, words.len(), at, false) {
                    return None;
                }
                let mut out = Vec::new();
                for w in words {
                    match w.text.find('=') {
                        Some(eq) => {
                            let (a, b) = (w.span.start, w.span.end);
                            let len = w.text.len();
                            let name = Word::new(&w.text[..eq], Self::sub_span(a, b, len, 0, eq));
                            let default = Word::new(
                                &w.text[eq + 1..],
                                Self::sub_span(a, b, len, eq + 1, len),
                            );
                            if name.text.is_empty() {
                                self.err(
                                    Diagnostic::error("ARG names can not be blank", w.span)
                                        .with_code("invalid-arg"),
                                );
                                return None;
                            }
                            out.push(ArgDecl {
                                name,
                                default: Some(default),
                            });
                        }
                        None => out.push(ArgDecl {
                            name: w,
                            default: None,
                        }),
                    }
                }
                Some(Command::Arg(out))
            }
            Keyword::Onbuild => {
                if text.is_empty() {
                    self.need_args(kw, 1, 0, at, false);
                    return None;
                }
                // BuildKit only checks the trigger's keyword here; the trigger itself is parsed
                // when a child image is built. Problems in it are warnings now.
                let before = self.diags.len();
                let sub = self.instruction(start);
                let sub_diags: Vec<Diagnostic> = self.diags.drain(before..).collect();
                for mut d in sub_diags {
                    d.severity = drydock_diagnostics::Severity::Warning;
                    d.message = format!("ONBUILD trigger: {}", d.message);
                    d = d.with_hint("the trigger would fail in every image built FROM this one");
                    self.diags.push(d);
                }
                let sub = sub?;
                match sub.keyword {
                    Keyword::Onbuild => {
                        self.err(
                            Diagnostic::error(
                                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                                sub.keyword_word.span,
                            )
                            .with_code("invalid-onbuild"),
                        );
                        return None;
                    }
                    Keyword::From | Keyword::Maintainer => {
                        self.err(
                            Diagnostic::error(
                                format!("{} isn't allowed as an ONBUILD trigger", sub.keyword),
                                sub.keyword_word.span,
                            )
                            .with_code("invalid-onbuild"),
                        );
                        return None;
                    }
                    _ => {}
                }
                Some(Command::Onbuild(Box::new(sub)))
            }
            Keyword::Healthcheck => self.healthcheck(fl, start, end, at),
        }
    }

    /// The span of `text[from..to]` of a word whose raw text is at source `a..b`; exact when the
    /// word lies on one line, otherwise the whole word.
    fn sub_span(a: usize, b: usize, len: usize, from: usize, to: usize) -> Span {
        if b - a == len {
            Span::new(a + from, a + to)
        } else {
            Span::new(a, b)
        }
    }

    fn healthcheck(&mut self, fl: &FlagSet, start: usize, end: usize, at: Span) -> Option<Command> {
        let text = &self.l.text[start..end];
        let sep = text.find(is_space).unwrap_or(text.len());
        if sep == 0 {
            self.need_args(Keyword::Healthcheck, 1, 0, at, false);
            return None;
        }
        let typ = &text[..sep];
        let next = sep + (text[sep..].len() - text[sep..].trim_start_matches(is_space).len());
        let typ_span = self.span(start..start + sep);
        if typ.eq_ignore_ascii_case("none") {
            if next < text.len() {
                self.err(
                    Diagnostic::error(
                        "HEALTHCHECK NONE takes no arguments",
                        self.span(start + next..end),
                    )
                    .with_code("invalid-healthcheck"),
                );
                return None;
            }
            if let Some(f) = fl.flags.first() {
                self.err(
                    Diagnostic::error("HEALTHCHECK NONE takes no flags", f.span)
                        .with_code("invalid-healthcheck"),
                );
                return None;
            }
            return Some(Command::Healthcheck(Healthcheck::None));
        }
        if !typ.eq_ignore_ascii_case("cmd") {
            self.err(
                Diagnostic::error(
                    format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)"),
                    typ_span,
                )
                .with_code("invalid-healthcheck")
                .with_hint(
                    "usage: HEALTHCHECK [--interval=30s ...] CMD <command>, or HEALTHCHECK NONE",
                ),
            );
            return None;
        }
        let command = self.command_line(start + next, end)?;
        if command.args().is_empty() {
            self.err(
                Diagnostic::error("Missing command after HEALTHCHECK CMD", typ_span)
                    .with_code("invalid-healthcheck"),
            );
            return None;
        }
        let mut ok = true;
        let mut dur = |p: &mut Self, name: &str| -> Option<Duration> {
            let w = fl.get(name)?;
            match Duration::parse(&w.text) {
                Ok(d) if d.0 == 0 => None,
                Ok(d) if d.0 < 1_000_000 => {
                    p.err(
                        Diagnostic::error(
                            format!("Interval {name:?} cannot be less than 1ms"),
                            w.span,
                        )
                        .with_code("invalid-duration"),
                    );
                    ok = false;
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    p.err(
                        Diagnostic::error(e, w.span)
                            .with_code("invalid-duration")
                            .with_hint("durations are numbers with a unit: 30s, 1m30s, 500ms, 2h"),
                    );
                    ok = false;
                    None
                }
            }
        };
        let interval = dur(self, "interval");
        let timeout = dur(self, "timeout");
        let start_period = dur(self, "start-period");
        let start_interval = dur(self, "start-interval");
        let retries = match fl.get("retries") {
            None => None,
            Some(w) => match w.text.parse::<i32>() {
                Ok(n) if n < 0 => {
                    self.err(
                        Diagnostic::error(format!("--retries cannot be negative ({n})"), w.span)
                            .with_code("invalid-flag"),
                    );
                    ok = false;
                    None
                }
                Ok(0) => None,
                Ok(n) => Some(i64::from(n)),
                Err(_) => {
                    self.err(
                        Diagnostic::error(
                            format!(
                                "invalid --retries value {:?}: expected a whole number",
                                w.text
                            ),
                            w.span,
                        )
                        .with_code("invalid-flag"),
                    );
                    ok = false;
                    None
                }
            },
        };
        ok.then_some(Command::Healthcheck(Healthcheck::Cmd {
            command,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        }))
    }
}

/// `u+x`, `g-w,o=r`, `a=rwX`: the symbolic modes newer Dockerfile frontends accept.
fn is_symbolic_chmod(v: &str) -> bool {
    !v.is_empty()
        && v.split(',').all(|clause| {
            let who_len = clause
                .find(|c: char| !"ugoa".contains(c))
                .unwrap_or(clause.len());
            let rest = &clause[who_len..];
            let mut chars = rest.chars().peekable();
            let mut saw_op = false;
            while let Some(c) = chars.next() {
                if !"+-=".contains(c) {
                    return false;
                }
                saw_op = true;
                while chars.peek().is_some_and(|c| "rwxXst".contains(*c)) {
                    chars.next();
                }
            }
            saw_op
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(src: &str, s: Span) -> &str {
        &src[s.range()]
    }

    #[test]
    fn spans_follow_continuations() {
        let src = "FROM alpine\nRUN --mount=type=cache,target=/c \\\n  # comment\n    echo hi \\\n\n    && true\n";
        let df = parse(src);
        let run = &df.instructions[1];
        assert_eq!(run.start_line, 2);
        assert_eq!(run.end_line, 6);
        assert_eq!(
            slice(src, run.flags[0].span),
            "--mount=type=cache,target=/c"
        );
        let Command::Run(r) = &run.command else {
            panic!()
        };
        let CommandLine::Shell(w) = &r.command else {
            panic!()
        };
        assert_eq!(w.text, "echo hi     && true");
        assert_eq!(slice(src, w.span), "echo hi \\\n\n    && true");
        assert!(
            df.diagnostics
                .iter()
                .any(|d| d.code.as_deref() == Some("NoEmptyContinuation"))
        );
    }

    #[test]
    fn heredocs() {
        let src = "FROM a\nRUN <<EOF cat && cat <<-'END'\necho $X\nEOF\n\tliteral $Y\n\tEND\nCOPY <<F /f\nhi\nF\n";
        let df = parse(src);
        assert!(df.diagnostics.is_empty(), "{:?}", df.diagnostics);
        let run = &df.instructions[1];
        assert_eq!(run.heredocs.len(), 2);
        assert_eq!(run.heredocs[0].content, "echo $X\n");
        assert!(run.heredocs[0].expand);
        assert_eq!(run.heredocs[1].name, "END");
        assert!(!run.heredocs[1].expand && run.heredocs[1].chomp);
        assert_eq!(run.heredocs[1].body(), "literal $Y\n");
        assert_eq!(run.end_line, 6);
        assert_eq!(df.instructions[2].heredocs[0].content, "hi\n");
    }

    #[test]
    fn backtick_escape() {
        let src = "# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo\n";
        let df = parse(src);
        let Command::Run(r) = &df.instructions[1].command else {
            panic!()
        };
        assert_eq!(
            r.command,
            CommandLine::Shell(Word::new("dir c:\\   && echo", r.command_span()))
        );
    }

    impl Run {
        fn command_span(&self) -> Span {
            match &self.command {
                CommandLine::Shell(w) => w.span,
                CommandLine::Exec(w) => w[0].span,
            }
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for src in [
            "\\",
            "RUN \\",
            "FROM",
            "COPY <<",
            "RUN <<'",
            "\u{feff}FROM a",
            "ONBUILD",
            "ONBUILD ONBUILD RUN x",
            "HEALTHCHECK",
            "ENV =",
            "RUN [\"a\", 1]",
            "ARG =x",
            "é\\\n",
        ] {
            let _ = parse(src);
        }
    }
}
