//! `.dockerignore` with the semantics of Docker's pattern matcher: patterns are cleaned and
//! anchored at the context root; `*` and `?` never match `/`; `**` matches any number of
//! directories; `[...]` is a character class; a leading `!` re-includes; the last matching
//! pattern wins; a pattern that matches a directory excludes everything under it.

/// One pattern line after cleaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The cleaned pattern without `!`.
    pub text: String,
    pub exclusion: bool,
    /// 1-based line in the ignore file.
    pub line: usize,
    toks: Vec<Tok>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: one char, not `/`.
    One,
    /// `*`: any run of non-`/` chars.
    Star,
    /// `**/` or a `**` inside the pattern: `(.*/)?`.
    AnyDirs,
    /// A trailing `**`: `.*`.
    AnyTail,
    /// `[...]`, as a regexp class.
    Class {
        neg: bool,
        items: Vec<(char, char)>,
    },
}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dockerignore {
    pub patterns: Vec<Pattern>,
}

/// Cleans a path like Go's `path.Clean`.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

impl Dockerignore {
    /// Reads a `.dockerignore` file's text (Docker's `ReadAll`): `#` lines are comments, lines
    /// are trimmed, `!` marks exceptions, paths are cleaned and made relative.
    pub fn parse(text: &str) -> Dockerignore {
        let mut lines: Vec<(usize, String)> = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            let line = if i == 0 {
                line.strip_prefix('\u{feff}').unwrap_or(line)
            } else {
                line
            };
            if line.starts_with('#') {
                continue;
            }
            lines.push((i + 1, line.to_string()));
        }
        let mut out = Dockerignore::default();
        for (lineno, line) in lines {
            out.push_line(&line, lineno);
        }
        out
    }

    /// Builds a matcher from patterns such as `--exclude` values (same syntax as the file).
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Dockerignore {
        let mut out = Dockerignore::default();
        for (i, p) in patterns.iter().enumerate() {
            out.push_line(p.as_ref(), i + 1);
        }
        out
    }

    fn push_line(&mut self, line: &str, lineno: usize) {
        let mut p = line.trim();
        if p.is_empty() {
            return;
        }
        let exclusion = p.starts_with('!');
        if exclusion {
            p = p[1..].trim();
        }
        let mut text = String::new();
        if !p.is_empty() {
            text = clean_path(p);
            if text.len() > 1 && text.starts_with('/') {
                text.remove(0);
            }
        }
        let toks = compile(&text);
        self.patterns.push(Pattern {
            text,
            exclusion,
            line: lineno,
            toks,
        });
    }

    /// The patterns back as lines (`!` restored), for a plan's exclude list.
    pub fn lines(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exclusion {
                    format!("!{}", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context root) is excluded: the last pattern that matches
    /// the path or one of its parent directories decides.
    pub fn is_excluded(&self, path: &str) -> bool {
        self.matching(path).is_some_and(|p| !p.exclusion)
    }

    /// The pattern that decides `path`, if any.
    pub fn matching(&self, path: &str) -> Option<&Pattern> {
        let path = clean_path(path.trim_start_matches('/'));
        let path = if path == "/" { ".".to_string() } else { path };
        let parents: Vec<&str> = path.split('/').collect();
        let mut decided = None;
        for p in &self.patterns {
            let mut m = matches(&p.toks, &path);
            if !m && parents.len() > 1 {
                for i in 1..parents.len() {
                    if matches(&p.toks, &parents[..i].join("/")) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                decided = Some(p);
            }
        }
        decided
    }

    /// Whether some path under directory `dir` could be included even though `dir` itself is
    /// excluded (an exception pattern may match below it). A walker can skip an excluded
    /// directory when this is false.
    pub fn could_reinclude_under(&self, dir: &str) -> bool {
        let dir = clean_path(dir.trim_start_matches('/'));
        let prefix = if dir == "." {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| can_extend(&p.toks, &prefix))
    }
}

fn compile(p: &str) -> Vec<Tok> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    out.push(Tok::AnyTail)
                } else {
                    out.push(Tok::AnyDirs)
                }
            }
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::One),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    out.push(Tok::Lit(n));
                    i += 1;
                }
                None => out.push(Tok::Lit('\\')),
            },
            '[' => {
                // A class up to the next unescaped `]`; without one, a literal `[`.
                let mut j = i;
                let neg = matches!(chars.get(j), Some('^' | '!'));
                if neg {
                    j += 1;
                }
                let mut items = Vec::new();
                let mut first = true;
                let mut closed = false;
                while j < chars.len() {
                    let mut a = chars[j];
                    if a == ']' && !first {
                        closed = true;
                        j += 1;
                        break;
                    }
                    first = false;
                    if a == '\\' && j + 1 < chars.len() {
                        j += 1;
                        a = chars[j];
                    }
                    j += 1;
                    if chars.get(j) == Some(&'-') && chars.get(j + 1).is_some_and(|c| *c != ']') {
                        let mut b = chars[j + 1];
                        j += 2;
                        if b == '\\' && j < chars.len() {
                            b = chars[j];
                            j += 1;
                        }
                        items.push((a, b));
                    } else {
                        items.push((a, a));
                    }
                }
                if closed {
                    out.push(Tok::Class { neg, items });
                    i = j;
                } else {
                    out.push(Tok::Lit('['));
                }
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    out
}

/// NFA states (token indices) reachable after consuming `s`, starting from state 0.
fn run(toks: &[Tok], s: &str) -> Vec<bool> {
    let m = toks.len();
    // State i: about to match toks[i]. Extra states for AnyDirs: inside the `.*` part (m+1+i).
    let n = 2 * m + 2;
    let close = |st: &mut Vec<bool>| {
        // AnyDirs and AnyTail may match empty.
        for i in 0..m {
            if st[i] && matches!(toks[i], Tok::AnyDirs | Tok::AnyTail | Tok::Star) {
                st[i + 1] = true;
            }
        }
    };
    let mut st = vec![false; n];
    st[0] = true;
    close(&mut st);
    for c in s.chars() {
        let mut nx = vec![false; n];
        let mut any = false;
        for i in 0..m {
            let inside = m + 1 + i;
            if st[inside] {
                // Inside `(.*/)`: any char; a `/` may end the group.
                nx[inside] = true;
                if c == '/' {
                    nx[i + 1] = true;
                }
                any = true;
            }
            if !st[i] {
                continue;
            }
            let ok = |nx: &mut Vec<bool>, j: usize| {
                nx[j] = true;
            };
            match &toks[i] {
                Tok::Lit(l) if *l == c => {
                    ok(&mut nx, i + 1);
                    any = true;
                }
                Tok::One if c != '/' => {
                    ok(&mut nx, i + 1);
                    any = true;
                }
                Tok::Star if c != '/' => {
                    ok(&mut nx, i);
                    any = true;
                }
                Tok::AnyTail => {
                    ok(&mut nx, i);
                    any = true;
                }
                Tok::AnyDirs => {
                    nx[inside] = true;
                    if c == '/' {
                        nx[i + 1] = true;
                    }
                    any = true;
                }
                Tok::Class { neg, items } => {
                    let hit = items.iter().any(|&(a, b)| a <= c && c <= b);
                    if hit != *neg {
                        ok(&mut nx, i + 1);
                        any = true;
                    }
                }
                _ => {}
            }
        }
        if !any {
            return vec![false; n];
        }
        close(&mut nx);
        st = nx;
    }
    st
}

fn matches(toks: &[Tok], s: &str) -> bool {
    run(toks, s)[toks.len()]
}

/// Whether some string starting with `prefix` can match.
fn can_extend(toks: &[Tok], prefix: &str) -> bool {
    run(toks, prefix).iter().any(|b| *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(s: &str) -> Dockerignore {
        Dockerignore::parse(s)
    }

    #[test]
    fn cleans_paths() {
        assert_eq!(clean_path("a//b/./c/.."), "a/b");
        assert_eq!(clean_path("/../a"), "/a");
        assert_eq!(clean_path("./"), ".");
        assert_eq!(ig("/foo/\n!./bar\n# c\n\n").lines(), ["foo", "!bar"]);
    }

    #[test]
    fn wildcards() {
        let d = ig("*.md\n!README.md\ntemp?\n**/*.log\nbuild/**\n[abc].txt\n");
        assert!(d.is_excluded("x.md"));
        assert!(!d.is_excluded("README.md"));
        assert!(!d.is_excluded("docs/x.md"), "* does not cross directories");
        assert!(d.is_excluded("temp1"));
        assert!(d.is_excluded("a/b/c.log"));
        assert!(d.is_excluded("c.log"));
        assert!(d.is_excluded("build/x/y"));
        assert!(d.is_excluded("b.txt"));
        assert!(!d.is_excluded("d.txt"));
    }

    #[test]
    fn directories_exclude_their_subtree_and_last_match_wins() {
        let d = ig("node_modules\n");
        assert!(d.is_excluded("node_modules/a/b.js"));
        let d = ig("docs\n!docs/keep.md\n");
        assert!(d.is_excluded("docs/x.md"));
        assert!(!d.is_excluded("docs/keep.md"));
        assert!(d.could_reinclude_under("docs"));
        assert!(!d.could_reinclude_under("other"));
        let d = ig("!docs/keep.md\ndocs\n");
        assert!(d.is_excluded("docs/keep.md"));
        let d = ig("*\n!**/*.go\n");
        assert!(d.could_reinclude_under("vendor/x"));
    }

    #[test]
    fn double_star_middle() {
        let d = ig("a/**/z");
        assert!(d.is_excluded("a/z"));
        assert!(d.is_excluded("a/b/c/z"));
        assert!(!d.is_excluded("a/bz"));
    }
}
