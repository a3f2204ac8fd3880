use base64::Engine as _;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Values shorter than this are not masked: masking `a` or `1` would blank out every log line
/// and tell an observer the secret's value anyway.
const MIN_LEN: usize = 3;

/// Replaces registered secret values (and their common encodings) in text.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a value that contains another is masked whole.
    needles: Vec<String>,
}

impl Masker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a value with its base64 (standard and URL-safe, with and without padding),
    /// URL-encoded and JSON-escaped forms. Multi-line values also register each line, because
    /// process output arrives line by line.
    pub fn add(&mut self, value: &str) {
        if value.trim().len() < MIN_LEN {
            return;
        }
        let mut forms = vec![value.to_string()];
        for line in value.lines() {
            forms.push(line.trim_end_matches('\r').to_string());
        }
        let b = value.as_bytes();
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            forms.push(engine.encode(b));
        }
        forms.push(url_encode(value));
        forms.push(json_escape(value));
        for f in forms {
            if f.trim().len() >= MIN_LEN && !self.needles.contains(&f) {
                self.needles.push(f);
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every registered form replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), MASK);
            }
        }
        out
    }
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn json_escape(s: &str) -> String {
    let quoted = format!("{s:?}");
    // Rust's Debug escaping matches JSON for the characters that matter in practice (quotes,
    // backslashes, control characters as \n \t \u{..}); strip the surrounding quotes.
    quoted[1..quoted.len() - 1].to_string()
}

/// Masks a stream of output: complete lines are masked and returned; a partial line waits for
/// its end (or for [`LineMasker::finish`]), so a secret split across two reads is still caught.
#[derive(Debug, Clone)]
pub struct LineMasker {
    masker: Masker,
    pending: Vec<u8>,
}

impl LineMasker {
    pub fn new(masker: Masker) -> Self {
        Self {
            masker,
            pending: Vec::new(),
        }
    }

    /// Feeds bytes; returns the masked complete lines (without their newlines).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            lines.push(self.masker.mask(text.trim_end_matches('\r')));
        }
        lines
    }

    /// The last, unterminated line, masked.
    pub fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        Some(self.masker.mask(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(values: &[&str]) -> Masker {
        let mut m = Masker::new();
        for v in values {
            m.add(v);
        }
        m
    }

    #[test]
    fn masks_value_and_encodings() {
        let m = masker(&["s3cr3t/+value"]);
        assert_eq!(m.mask("token=s3cr3t/+value end"), "token=*** end");
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr3t/+value");
        assert_eq!(m.mask(&format!("auth: {b64}")), "auth: ***");
        assert_eq!(m.mask("q=s3cr3t%2F%2Bvalue"), "q=***");
    }

    #[test]
    fn longer_secret_containing_shorter_is_masked_whole() {
        let m = masker(&["abc", "abcdef"]);
        assert_eq!(m.mask("x abcdef y abc"), "x *** y ***");
    }

    #[test]
    fn short_values_are_not_masked() {
        let m = masker(&["ab", "  "]);
        assert!(m.is_empty());
        assert_eq!(m.mask("abab"), "abab");
    }

    #[test]
    fn multi_line_secrets_are_masked_per_line() {
        let m = masker(&["-----BEGIN KEY-----\nMIIabc\n-----END KEY-----"]);
        let mut lm = LineMasker::new(m);
        let lines = lm.push(b"-----BEGIN KEY-----\nMIIabc\n");
        assert_eq!(lines, vec!["***", "***"]);
    }

    #[test]
    fn secret_split_across_reads_is_masked() {
        let mut lm = LineMasker::new(masker(&["hunter2"]));
        assert!(lm.push(b"password: hun").is_empty());
        assert_eq!(lm.push(b"ter2\nnext"), vec!["password: ***"]);
        assert_eq!(lm.finish().as_deref(), Some("next"));
        assert_eq!(lm.finish(), None);
    }

    proptest::proptest! {
        #[test]
        fn masked_output_never_contains_the_secret(secret in "[a-zA-Z0-9/+=%]{3,20}", prefix in ".{0,30}", suffix in ".{0,30}") {
            let m = masker(&[&secret]);
            let out = m.mask(&format!("{prefix}{secret}{suffix}"));
            proptest::prop_assert!(!out.contains(&secret), "{out}");
        }
    }
}
