//! Word expansion as BuildKit's shell lexer does it: quotes, the escape character, `$VAR`,
//! `${VAR}` and the modifiers `:-` `-` `:+` `+` `:?` `?` `#` `##` `%` `%%` `/` `//`.
//!
//! Which instructions expand is the frontend's business; this module only expands one word.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where variables come from.
pub trait Env {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

/// An ordered list where the last entry for a name wins (like an env list).
impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// No variables at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl Env for NoEnv {
    fn get(&self, _: &str) -> Option<&str> {
        None
    }
}

/// An expansion error with the byte offset (in the word) where it was detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    pub message: String,
    pub offset: usize,
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExpandError {}

/// The result of expanding one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    pub text: String,
    /// Variables that were referenced and set.
    pub matched: BTreeSet<String>,
    /// Variables referenced as `$X`, `${X}` or with a pattern modifier but not set (the
    /// `UndefinedVar` check reports these; `${X:-d}`, `${X+a}` and `${X?m}` handle unset
    /// variables themselves and are not counted).
    pub unmatched: BTreeSet<String>,
}

/// Lexer settings (BuildKit's `shell.Lex`).
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave unset variables as written (`$X`, `${X:-y}`).
    pub skip_unset_env: bool,
    /// Treat quotes as ordinary characters (heredoc bodies).
    pub skip_process_quotes: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// Expands `word` to a single string (BuildKit's `ProcessWordWithMatches`).
    pub fn expand(&self, word: &str, env: &dyn Env) -> Result<Expanded, ExpandError> {
        let mut st = State::new(self, word, env);
        let (text, _) = st.process_stop_on(None, false)?;
        Ok(Expanded {
            text,
            matched: st.matched,
            unmatched: st.unmatched,
        })
    }

    /// Expands `word` and splits the result into shell words (BuildKit's `ProcessWords`).
    pub fn expand_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        let mut st = State::new(self, word, env);
        st.split_words = true;
        let (_, words) = st.process_stop_on(None, false)?;
        Ok(words)
    }
}

/// Convenience: expand with the default lexer settings.
pub fn expand(word: &str, escape: char, env: &dyn Env) -> Result<Expanded, ExpandError> {
    Lexer::new(escape).expand(word, env)
}

/// Go's `unicode.IsSpace`.
fn is_space(c: char) -> bool {
    crate::words::is_space(c)
}

#[derive(Default)]
struct Words {
    /// Off for single-word expansion, which does not need the split.
    on: bool,
    words: Vec<String>,
    word: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if !self.on {
            return;
        }
        if is_space(c) {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        if !self.on {
            return;
        }
        self.word.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        if !self.on {
            return;
        }
        for c in s.chars() {
            self.add_char(c);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        if !self.on {
            return;
        }
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

struct State<'a> {
    lx: &'a Lexer,
    chars: Vec<(usize, char)>,
    len: usize,
    pos: usize,
    env: &'a dyn Env,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
    depth: usize,
    split_words: bool,
}

const MAX_DEPTH: usize = 200;

impl<'a> State<'a> {
    fn new(lx: &'a Lexer, word: &str, env: &'a dyn Env) -> Self {
        Self {
            lx,
            chars: word.char_indices().collect(),
            len: word.len(),
            pos: 0,
            env,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
            depth: 0,
            split_words: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn offset(&self) -> usize {
        self.chars.get(self.pos).map_or(self.len, |&(o, _)| o)
    }

    fn err(&self, message: impl Into<String>) -> ExpandError {
        ExpandError {
            message: message.into(),
            offset: self.offset(),
        }
    }

    fn err_at(&self, at: usize, message: impl Into<String>) -> ExpandError {
        ExpandError {
            message: message.into(),
            offset: at,
        }
    }

    fn get_env(&mut self, name: &str, track_unmatched: bool) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                if track_unmatched {
                    self.unmatched.insert(name.to_string());
                }
                None
            }
        }
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("substitution nested too deeply"));
        }
        let mut result = String::new();
        let mut words = Words {
            on: self.split_words && self.depth == 1,
            ..Words::default()
        };
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                self.depth -= 1;
                return Ok((result, words.finish()));
            }
            let special = match ch {
                '\'' | '"' => !self.lx.skip_process_quotes,
                '$' => true,
                _ => false,
            };
            if special {
                let tmp = match ch {
                    '\'' => self.single_quote()?,
                    '"' => self.double_quote()?,
                    _ => self.dollar()?,
                };
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            let mut ch = self.next().unwrap_or(' ');
            if ch == self.lx.escape {
                if raw_escapes || self.lx.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                match self.next() {
                    None => break,
                    Some(c) => ch = c,
                }
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        self.depth -= 1;
        if let Some(s) = stop {
            return Err(self.err(format!(
                "unexpected end of statement while looking for matching {s}"
            )));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, ExpandError> {
        let at = self.offset();
        self.next();
        let mut out = String::new();
        if self.lx.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(self.err_at(
                        at,
                        "unexpected end of statement while looking for matching single-quote",
                    ));
                }
                Some('\'') => break,
                Some(c) => out.push(c),
            }
        }
        if self.lx.raw_quotes {
            out.push('\'');
        }
        Ok(out)
    }

    fn double_quote(&mut self) -> Result<String, ExpandError> {
        let at = self.offset();
        self.next();
        let mut out = String::new();
        if self.lx.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(self.err_at(
                        at,
                        "unexpected end of statement while looking for matching double-quote",
                    ));
                }
                Some('"') => {
                    self.next();
                    break;
                }
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or(' ');
                    if ch == self.lx.escape {
                        if self.lx.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lx.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
        if self.lx.raw_quotes {
            out.push('"');
        }
        Ok(out)
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_numeric() {
                while let Some(d) = self.peek().filter(|d| d.is_numeric()) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }

    fn dollar(&mut self) -> Result<String, ExpandError> {
        let at = self.offset();
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name, true) {
                Some(v) => v,
                None if self.lx.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(self.err_at(at, "syntax error: missing '}'")),
            Some('{' | '}' | ':') => return Err(self.err_at(at, "syntax error: bad substitution")),
            _ => {}
        }
        let name = self.name();
        let Some(mut ch) = self.next() else {
            return Err(self.err_at(at, "syntax error: missing '}'"));
        };
        let mut chs = ch.to_string();
        let mut null_is_unset = false;
        match ch {
            '}' => {
                return Ok(match self.get_env(&name, true) {
                    Some(v) => v,
                    None if self.lx.skip_unset_env => format!("${{{name}}}"),
                    None => String::new(),
                });
            }
            '/' => return self.replace(at, &name),
            ':' => {
                null_is_unset = true;
                match self.next() {
                    Some(c) => {
                        ch = c;
                        chs.push(c);
                    }
                    None => return Err(self.err_at(at, "syntax error: missing '}'")),
                }
            }
            _ => {}
        }
        if !matches!(ch, '+' | '-' | '?' | '#' | '%') {
            return Err(self.err_at(at, format!("unsupported modifier ({chs}) in substitution")));
        }
        let pattern_mod = ch == '#' || ch == '%';
        if null_is_unset && pattern_mod {
            return Err(self.err_at(at, format!("unsupported modifier ({chs}) in substitution")));
        }
        let word = match self.process_stop_on(Some('}'), pattern_mod) {
            Ok((w, _)) => w,
            Err(e)
                if self.peek().is_none()
                    && e.message.starts_with(
                        "unexpected end of statement while looking for matching }",
                    ) =>
            {
                return Err(self.err_at(at, "syntax error: missing '}'"));
            }
            Err(e) => return Err(e),
        };
        let value = self.get_env(&name, pattern_mod);
        if self.lx.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let set = value.is_some();
        let value = value.unwrap_or_default();
        let empty_or_unset = !set || (null_is_unset && value.is_empty());
        Ok(match ch {
            '-' => {
                if empty_or_unset {
                    word
                } else {
                    value
                }
            }
            '+' => {
                if empty_or_unset {
                    String::new()
                } else {
                    word
                }
            }
            '?' => {
                if !set {
                    let m = if word.is_empty() {
                        "is not allowed to be unset".to_string()
                    } else {
                        word
                    };
                    return Err(self.err_at(at, format!("{name}: {m}")));
                }
                if null_is_unset && value.is_empty() {
                    let m = if word.is_empty() {
                        "is not allowed to be empty".to_string()
                    } else {
                        word
                    };
                    return Err(self.err_at(at, format!("{name}: {m}")));
                }
                value
            }
            _ => {
                let (greedy, pat) = match word.strip_prefix(ch) {
                    Some(p) => (true, p.to_string()),
                    None => (false, word),
                };
                let toks = compile(&pat).map_err(|e| {
                    self.err_at(at, format!("invalid pattern ({pat}) in substitution: {e}"))
                })?;
                let v: Vec<char> = value.chars().collect();
                if ch == '#' {
                    match prefix_match(&toks, &v, greedy) {
                        Some(n) => v[n..].iter().collect(),
                        None => value,
                    }
                } else {
                    let rt: Vec<Tok> = toks.into_iter().rev().collect();
                    let rv: Vec<char> = v.iter().rev().copied().collect();
                    match prefix_match(&rt, &rv, greedy) {
                        Some(n) => v[..v.len() - n].iter().collect(),
                        None => value,
                    }
                }
            }
        })
    }

    fn replace(&mut self, at: usize, name: &str) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(_) if self.peek().is_none() => {
                return Err(self.err_at(at, "syntax error: missing '/' in ${}"));
            }
            Err(e) => return Err(e),
        };
        let repl = match self.process_stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(_) if self.peek().is_none() => {
                return Err(self.err_at(at, "syntax error: missing '}'"));
            }
            Err(e) => return Err(e),
        };
        let value = self.get_env(name, true);
        if self.lx.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}/{pattern}/{repl}}}"));
        }
        let value = value.unwrap_or_default();
        let toks = compile(&pattern).map_err(|e| {
            self.err_at(
                at,
                format!("invalid pattern ({pattern}) in substitution: {e}"),
            )
        })?;
        let v: Vec<char> = value.chars().collect();
        if v.len()
            .saturating_mul(v.len())
            .saturating_mul(toks.len().max(1))
            > 4_000_000
        {
            return Err(self.err_at(at, "substitution pattern too expensive for this value"));
        }
        let mut out = String::new();
        let mut pos = 0;
        let mut prev_end: Option<usize> = None;
        loop {
            let found =
                (pos..=v.len()).find_map(|s| longest_match_at(&toks, &v, s).map(|l| (s, l)));
            let Some((s, l)) = found else { break };
            if l == 0 && prev_end == Some(s) {
                if s >= v.len() {
                    break;
                }
                out.extend(&v[pos..=s]);
                pos = s + 1;
                continue;
            }
            out.extend(&v[pos..s]);
            out.push_str(&repl);
            prev_end = Some(s + l);
            if l == 0 {
                if s < v.len() {
                    out.push(v[s]);
                }
                pos = s + 1;
            } else {
                pos = s + l;
            }
            if !all || pos > v.len() {
                break;
            }
        }
        if pos < v.len() {
            out.extend(&v[pos..]);
        }
        Ok(out)
    }
}

/// One element of a shell pattern as BuildKit compiles it (`*`, `?`, literal; no classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

fn compile(p: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = p.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::Any),
            '\\' => {
                if it.peek() == Some(&'}') {
                    continue;
                }
                match it.next() {
                    Some(n @ ('*' | '?' | '\\')) => out.push(Tok::Lit(n)),
                    Some(n) => return Err(format!("invalid escape '\\{n}'")),
                    None => return Err("trailing backslash at end of expression".into()),
                }
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    Ok(out)
}

/// Lengths `n` for which `toks` matches `v[start..start+n]` exactly, via an NFA simulation.
fn match_lengths(toks: &[Tok], v: &[char], start: usize) -> Vec<usize> {
    let m = toks.len();
    let mut states = vec![false; m + 1];
    let close = |states: &mut Vec<bool>| {
        for i in 0..m {
            if states[i] && toks[i] == Tok::Star {
                states[i + 1] = true;
            }
        }
    };
    states[0] = true;
    close(&mut states);
    let mut out = Vec::new();
    if states[m] {
        out.push(0);
    }
    for (k, &c) in v[start..].iter().enumerate() {
        let mut next = vec![false; m + 1];
        let mut any = false;
        for i in 0..m {
            if !states[i] {
                continue;
            }
            match toks[i] {
                Tok::Star => {
                    next[i] = true;
                    any = true;
                }
                Tok::Any => {
                    next[i + 1] = true;
                    any = true;
                }
                Tok::Lit(l) if l == c => {
                    next[i + 1] = true;
                    any = true;
                }
                Tok::Lit(_) => {}
            }
        }
        if !any {
            break;
        }
        close(&mut next);
        states = next;
        if states[m] {
            out.push(k + 1);
        }
    }
    out
}

fn prefix_match(toks: &[Tok], v: &[char], greedy: bool) -> Option<usize> {
    let lens = match_lengths(toks, v, 0);
    if greedy {
        lens.last().copied()
    } else {
        lens.first().copied()
    }
}

fn longest_match_at(toks: &[Tok], v: &[char], start: usize) -> Option<usize> {
    match_lengths(toks, v, start).last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [
            ("A", "hello"),
            ("E", ""),
            ("P", "/usr/local/bin/app.tar.gz"),
            ("S", "a b"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn x(w: &str) -> String {
        match expand(w, '\\', &env()) {
            Ok(e) => e.text,
            Err(e) => format!("ERR {}", e.message),
        }
    }

    #[test]
    fn basic_forms() {
        assert_eq!(x("$A"), "hello");
        assert_eq!(x("${A}x"), "hellox");
        assert_eq!(x("$Ax"), "");
        assert_eq!(x("${U:-def}"), "def");
        assert_eq!(x("${E:-def}"), "def");
        assert_eq!(x("${E-def}"), "");
        assert_eq!(x("${A:+alt}"), "alt");
        assert_eq!(x("${E+alt}"), "alt");
        assert_eq!(x("${E:+alt}"), "");
        assert_eq!(x("${U:?must be set}"), "ERR U: must be set");
        assert_eq!(x("${U?}"), "ERR U: is not allowed to be unset");
        assert_eq!(x("${E:?}"), "ERR E: is not allowed to be empty");
        assert_eq!(x("${E?}"), "");
        assert_eq!(x("$"), "$");
        assert_eq!(x("a$/b"), "a$/b");
    }

    #[test]
    fn patterns() {
        assert_eq!(x("${P#*/}"), "usr/local/bin/app.tar.gz");
        assert_eq!(x("${P##*/}"), "app.tar.gz");
        assert_eq!(x("${P%.*}"), "/usr/local/bin/app.tar");
        assert_eq!(x("${P%%.*}"), "/usr/local/bin/app");
        assert_eq!(x("${A/l/L}"), "heLlo");
        assert_eq!(x("${A//l/L}"), "heLLo");
        assert_eq!(x("${A/l*/X}"), "heX");
        assert_eq!(x("${A/x/y}"), "hello");
        assert_eq!(
            x("${A:#h}"),
            "ERR unsupported modifier (:#) in substitution"
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(x(r#""$A world""#), "hello world");
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x(r"\$A"), "$A");
        assert_eq!(x(r#""\$A""#), "$A");
        assert_eq!(x(r#""a\b""#), r"a\b");
        assert_eq!(
            x("\"abc"),
            "ERR unexpected end of statement while looking for matching double-quote"
        );
        assert_eq!(x("${A"), "ERR syntax error: missing '}'");
        assert_eq!(x("${}"), "ERR syntax error: bad substitution");
        assert_eq!(x("${A!}"), "ERR unsupported modifier (!) in substitution");
        assert_eq!(expand("`$A", '`', &env()).unwrap().text, "$A");
    }

    #[test]
    fn words_split_on_expanded_whitespace() {
        let lx = Lexer::new('\\');
        assert_eq!(
            lx.expand_words("$S \"c d\"", &env()).unwrap(),
            ["a", "b", "c d"]
        );
    }

    #[test]
    fn tracks_matches() {
        let e = expand("$A ${B} ${C:-x} ${D#y}", '\\', &env()).unwrap();
        assert_eq!(e.matched.into_iter().collect::<Vec<_>>(), ["A"]);
        assert_eq!(e.unmatched.into_iter().collect::<Vec<_>>(), ["B", "D"]);
    }
}
