//! GitHub Actions filter patterns for branches, tags and paths: `*` (any run of characters
//! except `/`), `**` (any run of characters), `?` (zero or one of the preceding character),
//! `+` (one or more of the preceding character), `[...]` (one character from a set or range of
//! `a-z`, `A-Z`, `0-9`), `\` to escape, and a leading `!` to negate in a list.

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Glob {
    pub pattern: String,
    pub negated: bool,
    regex: Regex,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

/// A pattern error: the message and the byte range within the pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobError {
    pub message: String,
    pub start: usize,
    pub end: usize,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let (negated, body, base) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest, 1),
            None => (false, pattern, 0),
        };
        let err = |m: &str, s: usize, e: usize| GlobError {
            message: m.to_string(),
            start: base + s,
            end: base + e,
        };
        if body.is_empty() {
            return Err(err(
                if negated {
                    "`!` must be followed by a pattern"
                } else {
                    "empty pattern"
                },
                0,
                0,
            ));
        }
        let mut re = String::from("^");
        // whether the last emitted item can take a `?` or `+` quantifier
        let mut quantifiable = false;
        let chars: Vec<(usize, char)> = body.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            let (pos, c) = chars[i];
            match c {
                '*' => {
                    if chars.get(i + 1).map(|x| x.1) == Some('*') {
                        re.push_str(".*");
                        i += 2;
                    } else {
                        re.push_str("[^/]*");
                        i += 1;
                    }
                    quantifiable = false;
                    continue;
                }
                '?' | '+' => {
                    if !quantifiable {
                        return Err(err(
                            &format!("`{c}` must follow a character it repeats"),
                            pos,
                            pos + 1,
                        ));
                    }
                    re.push(c);
                    quantifiable = false;
                }
                '[' => {
                    let mut j = i + 1;
                    let mut class = String::from("[");
                    let mut items = 0;
                    while j < chars.len() && chars[j].1 != ']' {
                        let (p, a) = chars[j];
                        if chars.get(j + 1).map(|x| x.1) == Some('-')
                            && chars.get(j + 2).is_some_and(|x| x.1 != ']')
                        {
                            let b = chars[j + 2].1;
                            let ok = (a.is_ascii_lowercase() && b.is_ascii_lowercase())
                                || (a.is_ascii_uppercase() && b.is_ascii_uppercase())
                                || (a.is_ascii_digit() && b.is_ascii_digit());
                            if !ok || a > b {
                                return Err(err(
                                    &format!(
                                        "invalid range `{a}-{b}`: ranges are a-z, A-Z or 0-9, low to high"
                                    ),
                                    p,
                                    chars[j + 2].0 + b.len_utf8(),
                                ));
                            }
                            class.push_str(&regex::escape(&a.to_string()));
                            class.push('-');
                            class.push_str(&regex::escape(&b.to_string()));
                            j += 3;
                        } else {
                            class.push_str(&regex::escape(&a.to_string()));
                            j += 1;
                        }
                        items += 1;
                    }
                    if j >= chars.len() {
                        return Err(err("`[` is not closed by `]`", pos, body.len()));
                    }
                    if items == 0 {
                        return Err(err("empty character set `[]`", pos, chars[j].0 + 1));
                    }
                    class.push(']');
                    re.push_str(&class);
                    i = j + 1;
                    quantifiable = true;
                    continue;
                }
                ']' => return Err(err("`]` without `[` (escape it as `\\]`)", pos, pos + 1)),
                '\\' => {
                    let Some(&(_, n)) = chars.get(i + 1) else {
                        return Err(err("`\\` at the end of the pattern", pos, pos + 1));
                    };
                    re.push_str(&regex::escape(&n.to_string()));
                    i += 2;
                    quantifiable = true;
                    continue;
                }
                c => {
                    re.push_str(&regex::escape(&c.to_string()));
                    quantifiable = true;
                }
            }
            i += 1;
        }
        re.push('$');
        let regex =
            Regex::new(&re).map_err(|e| err(&format!("invalid pattern: {e}"), 0, body.len()))?;
        Ok(Glob {
            pattern: pattern.to_string(),
            negated,
            regex,
        })
    }

    /// Whether the pattern (ignoring `!`) matches `s`.
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

/// GitHub's list semantics: patterns are read in order and the last one that matches decides
/// (a `!pattern` excludes, a plain one includes). No match means not included.
pub fn list_matches(globs: &[Glob], s: &str) -> bool {
    let mut included = false;
    for g in globs {
        if g.is_match(s) {
            included = !g.negated;
        }
    }
    included
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().is_match(s)
    }

    #[test]
    fn github_cheat_sheet() {
        assert!(m("feature/*", "feature/my-branch"));
        assert!(!m("feature/*", "feature/your/branch"));
        assert!(m("feature/**", "feature/your/branch"));
        assert!(m("main", "main"));
        assert!(!m("main", "main2"));
        assert!(m("**", "any/thing"));
        assert!(m("*", "main"));
        assert!(!m("*", "release/1"));
        assert!(m("v2*", "v2.0.0"));
        assert!(m("v[12].[0-9]+.[0-9]+", "v1.10.1"));
        assert!(!m("v[12].[0-9]+.[0-9]+", "v3.0.0"));
        assert!(m("mona/octocat?", "mona/octocat"));
        assert!(m("mona/octocat?", "mona/octoca"));
        assert!(!m("mona/octocat?", "mona/octocatt"));
        assert!(m("releases/**-alpha", "releases/beta/3-alpha"));
        assert!(m("'*'".trim_matches('\''), "x"));
        assert!(m("**.js", "src/app.js"));
        assert!(m("docs/**", "docs/a/b.md"));
        assert!(m("\\*literal", "*literal"));
        assert!(!m("\\*literal", "xliteral"));
    }

    #[test]
    fn negation_order() {
        let l: Vec<Glob> = ["releases/**", "!releases/**-alpha"]
            .iter()
            .map(|p| Glob::new(p).unwrap())
            .collect();
        assert!(list_matches(&l, "releases/10"));
        assert!(!list_matches(&l, "releases/10-alpha"));
        let l: Vec<Glob> = ["!releases/**-alpha", "releases/**"]
            .iter()
            .map(|p| Glob::new(p).unwrap())
            .collect();
        assert!(list_matches(&l, "releases/10-alpha"));
    }

    #[test]
    fn errors() {
        for bad in ["[abc", "[]", "[z-a]", "[a-Z]", "+x", "!", "", "a\\", "a]"] {
            assert!(Glob::new(bad).is_err(), "{bad}");
        }
    }
}
