//! Remote sources of `ADD`: an HTTP(S) download (verified against `--checksum`) and a git
//! checkout (the git CLI, so the user's git configuration and credentials apply).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use drydock_oci::{Algorithm, Digest};
use drydock_plan::{GitSource, HttpSource};

use crate::error::{BuildError, IoCtx};

fn http_err(url: &str, message: impl std::fmt::Display) -> BuildError {
    BuildError::Context {
        path: url.to_string(),
        message: message.to_string(),
    }
}

/// Downloads `h.url` into `dir/<filename>` (mode 0600, mtime from `Last-Modified`, else the
/// epoch, as BuildKit does) and returns the content digest, checked against `h.checksum`.
pub fn download(h: &HttpSource, dir: &Path, epoch: i64) -> Result<Digest, BuildError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BuildError::io("start the download runtime", dir, e))?;
    let path = dir.join(&h.filename);
    let (digest, modified) = rt.block_on(async {
        let client = reqwest::Client::builder()
            .user_agent(format!("drydock/{}", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| http_err(&h.url, e))?;
        let mut resp = client
            .get(&h.url)
            .send()
            .await
            .map_err(|e| http_err(&h.url, e))?;
        if !resp.status().is_success() {
            return Err(http_err(
                &h.url,
                format!("download failed: HTTP {}", resp.status()),
            ));
        }
        let modified = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let mut f = fs::File::create(&path).ctx("create", &path)?;
        let mut hasher = Algorithm::Sha256.hasher();
        while let Some(chunk) = resp.chunk().await.map_err(|e| http_err(&h.url, e))? {
            hasher.update(&chunk);
            f.write_all(&chunk).ctx("write", &path)?;
        }
        f.flush().ctx("write", &path)?;
        Ok::<_, BuildError>((hasher.finish(), modified))
    })?;
    if let Some(want) = &h.checksum
        && *want != digest
    {
        return Err(http_err(
            &h.url,
            format!("checksum mismatch: expected {want}, got {digest}"),
        ));
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).ctx("chmod", &path)?;
    let t = modified.unwrap_or(epoch);
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
    fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(time))
        .ctx("set mtime of", &path)?;
    Ok(digest)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` -> seconds since the epoch.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    if hms.len() != 3 {
        return None;
    }
    // days from civil (Howard Hinnant)
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

/// Checks a git source out under `dir`; returns the directory to copy from (the subdir, if
/// any) and the commit id.
pub fn checkout(g: &GitSource, dir: &Path) -> Result<(PathBuf, String), BuildError> {
    let co = dir.join("checkout");
    let commit =
        crate::context::git_checkout(&g.remote, g.reference.as_deref(), &co, g.keep_git_dir)
            .map_err(|message| BuildError::Context {
                path: g.remote.clone(),
                message,
            })?;
    if let Some(want) = &g.checksum
        && !commit.starts_with(want.as_str())
    {
        return Err(BuildError::Context {
            path: g.remote.clone(),
            message: format!("checksum mismatch: expected commit {want}, got {commit}"),
        });
    }
    let root = match &g.subdir {
        Some(s) => co.join(s.trim_matches('/')),
        None => co,
    };
    if !root.is_dir() {
        return Err(BuildError::Context {
            path: g.remote.clone(),
            message: format!("subdirectory {:?} not found", g.subdir),
        });
    }
    let mut key = commit.clone();
    key.push_str(&format!(
        " keep-git-dir={} subdir={:?}",
        g.keep_git_dir, g.subdir
    ));
    Ok((root, key))
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates() {
        assert_eq!(
            super::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(super::parse_http_date("garbage"), None);
    }
}
