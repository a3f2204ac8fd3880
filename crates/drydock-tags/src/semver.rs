//! Semantic Versioning 2.0.0, read loosely as node-semver's `clean` does (surrounding
//! whitespace and a leading `v` or `=` are ignored).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemVer {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Dot-separated pre-release identifiers (`beta.67`), empty for a release.
    pub prerelease: Vec<String>,
    /// Build metadata (`+build.5`), which `{{version}}` leaves out.
    pub build: Vec<String>,
}

impl SemVer {
    pub fn parse(s: &str) -> Option<SemVer> {
        let t = s.trim();
        let t = t.strip_prefix('=').unwrap_or(t).trim_start();
        let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
        let (rest, build) = match t.split_once('+') {
            Some((r, b)) => (r, Some(b)),
            None => (t, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (rest, None),
        };
        let mut nums = core.split('.');
        let mut num = || -> Option<u64> {
            let n = nums.next()?;
            if n.is_empty()
                || !n.bytes().all(|b| b.is_ascii_digit())
                || (n.len() > 1 && n.starts_with('0'))
            {
                return None;
            }
            n.parse().ok()
        };
        let (major, minor, patch) = (num()?, num()?, num()?);
        if nums.next().is_some() {
            return None;
        }
        let ident_ok = |id: &str, numeric_no_zero: bool| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !(numeric_no_zero
                    && id.len() > 1
                    && id.starts_with('0')
                    && id.bytes().all(|b| b.is_ascii_digit()))
        };
        let prerelease: Vec<String> = match pre {
            Some(p) => p.split('.').map(str::to_string).collect(),
            None => Vec::new(),
        };
        if pre.is_some() && !prerelease.iter().all(|i| ident_ok(i, true)) {
            return None;
        }
        let build: Vec<String> = match build {
            Some(b) => b.split('.').map(str::to_string).collect(),
            None => Vec::new(),
        };
        if !build.iter().all(|i| ident_ok(i, false)) {
            return None;
        }
        Some(SemVer {
            major,
            minor,
            patch,
            prerelease,
            build,
        })
    }

    pub fn is_prerelease(&self) -> bool {
        !self.prerelease.is_empty()
    }

    /// `major.minor.patch[-prerelease]` (build metadata left out, as node-semver's `version`).
    pub fn version(&self) -> String {
        let mut s = format!("{}.{}.{}", self.major, self.minor, self.patch);
        if self.is_prerelease() {
            s.push('-');
            s.push_str(&self.prerelease.join("."));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loosely() {
        let v = SemVer::parse("v2.0.8-beta.67").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (2, 0, 8));
        assert_eq!(v.version(), "2.0.8-beta.67");
        assert_eq!(
            SemVer::parse(" =1.2.3+build.1 ").unwrap().version(),
            "1.2.3"
        );
        for bad in [
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.2.3-",
            "1.2.3-01",
            "v",
            "release-1",
            "1.2.x",
        ] {
            assert!(SemVer::parse(bad).is_none(), "{bad}");
        }
    }
}
