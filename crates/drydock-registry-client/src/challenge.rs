//! `WWW-Authenticate` challenges (RFC 7235): several per header, several headers, quoted values.
//!
//! Pure: no IO. Registries answer `401` with `Bearer realm="…",service="…",scope="…"` (token
//! auth) or `Basic realm="…"`; some send both, in one header or in two.

use std::collections::BTreeMap;

/// One challenge: an auth scheme (lowercased) and its parameters (keys lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    pub fn is_bearer(&self) -> bool {
        self.scheme == "bearer"
    }

    pub fn is_basic(&self) -> bool {
        self.scheme == "basic"
    }

    /// The `error` parameter of a Bearer challenge (`insufficient_scope`, `invalid_token`).
    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }

    /// The scopes a Bearer challenge asks for (`scope="a b"` holds several, space separated).
    pub fn scopes(&self) -> Vec<String> {
        self.param("scope")
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses every challenge of every given header value. Malformed parts are skipped, never fatal.
pub fn parse_all<'a>(headers: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    headers.into_iter().flat_map(parse).collect()
}

/// Parses one header value, which may hold several challenges.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip_ws_and_commas();
        if p.eof() {
            break;
        }
        let Some(scheme) = p.token() else {
            // Unexpected character: skip it and try to resynchronise.
            p.i += 1;
            continue;
        };
        let mut ch = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        // Parameters: `key = value` separated by commas, until a token that is not followed by
        // `=`, which starts the next challenge.
        loop {
            let save = p.i;
            p.skip_ws_and_commas();
            let Some(key) = p.token() else {
                // token68 (`Basic abc==`) or garbage: take what is left of this item.
                while !p.eof() && p.peek() != Some(b',') {
                    p.i += 1;
                }
                break;
            };
            p.skip_ws();
            if p.peek() != Some(b'=') {
                // A new scheme: rewind to before it.
                p.i = save;
                break;
            }
            p.i += 1;
            p.skip_ws();
            let value = if p.peek() == Some(b'"') {
                p.quoted()
            } else {
                p.token().map(str::to_string)
            };
            match value {
                Some(v) => {
                    ch.params.insert(key.to_ascii_lowercase(), v);
                }
                None => break,
            }
        }
        out.push(ch);
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn eof(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// An RFC 7230 token (plus `/` and `=`-free token68 characters that registries use in values).
    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let tchar = c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                        | b'/'
                        | b':'
                );
            if !tchar {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default())
    }

    fn quoted(&mut self) -> Option<String> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        // Unterminated: take what we have.
        Some(String::from_utf8_lossy(&out).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer() {
        let c = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert!(c[0].is_bearer());
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].scopes(), vec!["repository:library/alpine:pull"]);
    }

    #[test]
    fn several_challenges_in_one_header() {
        let c = parse(
            r#"Basic realm="basic, with comma", Bearer realm="https://a/t", service=reg, error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].is_basic());
        assert_eq!(c[0].param("realm"), Some("basic, with comma"));
        assert!(c[1].is_bearer());
        assert_eq!(c[1].param("service"), Some("reg"));
        assert_eq!(c[1].error(), Some("insufficient_scope"));
    }

    #[test]
    fn quoted_escapes_case_and_spacing() {
        let c = parse(r#"BEARER  Realm = "a\"b" ,Scope="x y""#);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("a\"b"));
        assert_eq!(c[0].scopes(), vec!["x", "y"]);
    }

    #[test]
    fn several_headers_and_bare_schemes() {
        let c = parse_all(["Basic", r#"Bearer realm="r""#, "Negotiate abc=="]);
        let schemes: Vec<_> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["basic", "bearer", "negotiate"]);
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            "",
            ",,,",
            "=",
            "\"",
            "Bearer realm=",
            "Bearer realm=\"unterminated",
            "Bearer ,=,\"",
            "ä ö",
        ] {
            let _ = parse(s);
        }
    }
}
