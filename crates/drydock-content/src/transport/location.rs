use std::fmt;
use std::path::PathBuf;

use drydock_oci::Reference;

use crate::ContentError;

/// A parsed transport location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(Reference),
    OciDir {
        path: PathBuf,
        tag: Option<String>,
    },
    DockerArchive {
        path: PathBuf,
        reference: Option<Reference>,
    },
    Registry(Reference),
}

impl Location {
    pub fn parse(s: &str) -> Result<Self, ContentError> {
        let bad = |why: String| ContentError::Transport(format!("invalid location {s:?}: {why}"));
        let reference = |r: &str| Reference::parse(r).map_err(|e| bad(e.to_string()));
        if let Some(r) = s.strip_prefix("docker://") {
            return Ok(Location::Registry(reference(r)?));
        }
        if let Some(r) = s.strip_prefix("local:") {
            return Ok(Location::Local(reference(r)?));
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            // The tag follows the last ':'; a path with ':' in it needs a tag to disambiguate.
            let (path, tag) = match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') => (p, Some(t.to_string())),
                _ => (rest, None),
            };
            if path.is_empty() {
                return Err(bad("missing directory".into()));
            }
            if let Some(t) = &tag
                && t.is_empty()
            {
                return Err(bad("empty tag after ':'".into()));
            }
            return Ok(Location::OciDir {
                path: PathBuf::from(path),
                tag,
            });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (path, r) = match rest.split_once(':') {
                Some((p, r)) => (p, Some(reference(r)?)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(bad("missing file".into()));
            }
            return Ok(Location::DockerArchive {
                path: PathBuf::from(path),
                reference: r,
            });
        }
        if let Some((transport, rest)) = s.split_once(':')
            && rest.starts_with("//")
        {
            return Err(bad(format!(
                "unknown transport {transport:?}; use local:, oci:, docker-archive: or docker://"
            )));
        }
        Ok(Location::Local(reference(s)?))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(r) => write!(f, "local:{}", r.familiar()),
            Location::OciDir { path, tag: Some(t) } => write!(f, "oci:{}:{t}", path.display()),
            Location::OciDir { path, tag: None } => write!(f, "oci:{}", path.display()),
            Location::DockerArchive {
                path,
                reference: Some(r),
            } => {
                write!(f, "docker-archive:{}:{}", path.display(), r.familiar())
            }
            Location::DockerArchive {
                path,
                reference: None,
            } => write!(f, "docker-archive:{}", path.display()),
            Location::Registry(r) => write!(f, "docker://{}", r.familiar()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        assert_eq!(
            Location::parse("oci:/tmp/x:v1").unwrap(),
            Location::OciDir {
                path: "/tmp/x".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            Location::parse("oci:/tmp/x").unwrap(),
            Location::OciDir {
                path: "/tmp/x".into(),
                tag: None
            }
        );
        assert!(matches!(
            Location::parse("busybox").unwrap(),
            Location::Local(_)
        ));
        assert!(matches!(
            Location::parse("localhost:5000/a:1").unwrap(),
            Location::Local(_)
        ));
        assert!(matches!(
            Location::parse("local:busybox:1").unwrap(),
            Location::Local(_)
        ));
        assert!(matches!(
            Location::parse("docker://localhost:5000/a").unwrap(),
            Location::Registry(_)
        ));
        match Location::parse("docker-archive:/tmp/a.tar:busybox:1").unwrap() {
            Location::DockerArchive {
                path,
                reference: Some(r),
            } => {
                assert_eq!(path, PathBuf::from("/tmp/a.tar"));
                assert_eq!(r.to_string(), "docker.io/library/busybox:1");
            }
            other => panic!("{other:?}"),
        }
        assert!(Location::parse("oci:").is_err());
        assert!(Location::parse("ftp://x").is_err());
    }
}
