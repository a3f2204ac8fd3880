//! PEP 440 versions: parsing with the specification's normalisations (`1.2.3beta2` is
//! `1.2.3b2`, `1.0-dev4` is `1.0.dev4`, `1.2.3-1` is `1.2.3.post1`, a leading `v` is dropped).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pep440 {
    pub epoch: u64,
    pub release: Vec<u64>,
    /// `("a" | "b" | "rc", n)`
    pub pre: Option<(&'static str, u64)>,
    pub post: Option<u64>,
    pub dev: Option<u64>,
    pub local: Option<String>,
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        &self.s[self.i..]
    }
    fn eat(&mut self, p: &str) -> bool {
        if self.rest().starts_with(p) {
            self.i += p.len();
            true
        } else {
            false
        }
    }
    fn sep(&mut self) -> bool {
        self.eat(".") || self.eat("-") || self.eat("_")
    }
    fn num(&mut self) -> Option<u64> {
        let n = self.rest().bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let v = self.rest()[..n].parse().ok();
        self.i += n;
        v
    }
}

impl Pep440 {
    pub fn parse(s: &str) -> Option<Pep440> {
        let lower = s.trim().to_ascii_lowercase();
        let body = lower.strip_prefix('v').unwrap_or(&lower);
        let mut c = Cursor { s: body, i: 0 };
        let mut epoch = 0;
        let first = c.num()?;
        let mut release = vec![first];
        if c.eat("!") {
            epoch = first;
            release = vec![c.num()?];
        }
        loop {
            let save = c.i;
            if c.eat(".")
                && let Some(n) = c.num()
            {
                release.push(n);
                continue;
            }
            c.i = save;
            break;
        }
        // pre-release
        let mut pre = None;
        let save = c.i;
        c.sep();
        let kinds: [(&str, &'static str); 8] = [
            ("alpha", "a"),
            ("beta", "b"),
            ("preview", "rc"),
            ("pre", "rc"),
            ("rc", "rc"),
            ("a", "a"),
            ("b", "b"),
            ("c", "rc"),
        ];
        if let Some((word, norm)) = kinds.iter().find(|(w, _)| c.rest().starts_with(w)) {
            c.i += word.len();
            let save_n = c.i;
            c.sep();
            let n = c.num().unwrap_or_else(|| {
                c.i = save_n;
                0
            });
            pre = Some((*norm, n));
        } else {
            c.i = save;
        }
        // post-release
        let mut post = None;
        let save = c.i;
        if c.eat("-") && c.rest().starts_with(|ch: char| ch.is_ascii_digit()) {
            post = c.num();
        } else {
            c.i = save;
            c.sep();
            let word = ["post", "rev", "r"]
                .into_iter()
                .find(|w| c.rest().starts_with(w));
            if let Some(w) = word {
                c.i += w.len();
                let save_n = c.i;
                c.sep();
                post = Some(c.num().unwrap_or_else(|| {
                    c.i = save_n;
                    0
                }));
            } else {
                c.i = save;
            }
        }
        // dev release
        let mut dev = None;
        let save = c.i;
        c.sep();
        if c.eat("dev") {
            let save_n = c.i;
            c.sep();
            dev = Some(c.num().unwrap_or_else(|| {
                c.i = save_n;
                0
            }));
        } else {
            c.i = save;
        }
        // local version
        let mut local = None;
        if c.eat("+") {
            let l = c.rest();
            let segs: Vec<&str> = l.split(['.', '-', '_']).collect();
            if segs
                .iter()
                .any(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric()))
            {
                return None;
            }
            local = Some(segs.join("."));
            c.i = c.s.len();
        }
        if !c.rest().is_empty() {
            return None;
        }
        Some(Pep440 {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    pub fn major(&self) -> u64 {
        self.release.first().copied().unwrap_or(0)
    }
    pub fn minor(&self) -> u64 {
        self.release.get(1).copied().unwrap_or(0)
    }
    pub fn patch(&self) -> u64 {
        self.release.get(2).copied().unwrap_or(0)
    }

    /// Pre-, post- or dev-release: such versions only get `{{version}}` (or `{{raw}}`).
    pub fn is_special(&self) -> bool {
        self.pre.is_some() || self.post.is_some() || self.dev.is_some()
    }

    /// The normalised form.
    pub fn version(&self) -> String {
        let mut s = String::new();
        if self.epoch != 0 {
            s.push_str(&format!("{}!", self.epoch));
        }
        s.push_str(
            &self
                .release
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("."),
        );
        if let Some((k, n)) = self.pre {
            s.push_str(&format!("{k}{n}"));
        }
        if let Some(n) = self.post {
            s.push_str(&format!(".post{n}"));
        }
        if let Some(n) = self.dev {
            s.push_str(&format!(".dev{n}"));
        }
        if let Some(l) = &self.local {
            s.push('+');
            s.push_str(l);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        for (input, want) in [
            ("1.2.3", "1.2.3"),
            ("v1.2.3", "1.2.3"),
            ("1.2.3rc2", "1.2.3rc2"),
            ("1.2.3post1", "1.2.3.post1"),
            ("1.2.3beta2", "1.2.3b2"),
            ("1.0dev4", "1.0.dev4"),
            ("1.0-dev", "1.0.dev0"),
            ("1.2.3-1", "1.2.3.post1"),
            ("1.2.3.RC.1", "1.2.3rc1"),
            ("1!2.0", "1!2.0"),
            ("1.0+Ubuntu-1", "1.0+ubuntu.1"),
            ("01.02", "1.2"),
            ("1.0a", "1.0a0"),
            ("1.0-preview2", "1.0rc2"),
        ] {
            assert_eq!(
                Pep440::parse(input).map(|v| v.version()).as_deref(),
                Some(want),
                "{input}"
            );
        }
        for bad in ["", "x1", "1.2.3-beta.x", "1.0+", "1..2"] {
            assert!(Pep440::parse(bad).is_none(), "{bad}");
        }
    }
}
