//! Tag and repository name sanitisation.

/// Makes a valid tag: every run of characters outside `[A-Za-z0-9_.-]` becomes one `-` (as
/// metadata-action does, so `my/branch` is `my-branch`); then, because a registry refuses them,
/// leading `.` and `-` are dropped and the result is cut to 128 characters. May return an empty
/// string (the caller skips it).
pub fn sanitize_tag(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_bad = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
            out.push(c);
            in_bad = false;
        } else if !in_bad {
            out.push('-');
            in_bad = true;
        }
    }
    let trimmed = out.trim_start_matches(['.', '-']);
    trimmed.chars().take(128).collect()
}

/// Repository names are lower-cased (metadata-action does this for image names).
pub fn sanitize_repository(s: &str) -> String {
    s.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitises() {
        assert_eq!(sanitize_tag("my/branch"), "my-branch");
        assert_eq!(sanitize_tag("feature/ä ö"), "feature-");
        assert_eq!(sanitize_tag("1.2.3+build.7"), "1.2.3-build.7");
        assert_eq!(sanitize_tag("-x"), "x");
        assert_eq!(sanitize_tag(&"a".repeat(200)).len(), 128);
        assert_eq!(sanitize_repository("Name/App"), "name/app");
    }
}
