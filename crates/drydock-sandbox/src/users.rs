//! Resolving `USER` specs (`name|uid[:name|gid]`) against an image's `/etc/passwd` and
//! `/etc/group`, the way Docker does: a name must exist, a number need not; supplementary groups
//! come from `/etc/group` membership unless a group was given explicitly.

/// The identity the command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (without duplicates; may include `gid`).
    pub groups: Vec<u32>,
    /// Home directory from `/etc/passwd`, `/` when unknown.
    pub home: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("invalid user spec {0:?}: expected name|uid[:name|gid]")]
    Spec(String),
    #[error("unable to find user {name}: no matching entries in the image's /etc/passwd")]
    NoUser { name: String },
    #[error("unable to find group {name}: no matching entries in the image's /etc/group")]
    NoGroup { name: String },
}

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parses `/etc/passwd`; malformed lines and comments are skipped (as libc does).
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// Parses `/etc/group`; malformed lines and comments are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Resolves `spec` (`None` or empty = root) against the parsed files.
pub fn resolve(
    spec: Option<&str>,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<ResolvedUser, UserError> {
    let spec = spec.unwrap_or("").trim();
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if group_part.is_some_and(|g| g.is_empty() || g.contains(':')) {
        return Err(UserError::Spec(spec.to_string()));
    }
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let (uid, gid, home, name) =
        match parse_id(user_part) {
            Some(uid) => match passwd.iter().find(|p| p.uid == uid) {
                Some(p) => (uid, p.gid, p.home.clone(), Some(p.name.clone())),
                None => (uid, 0, "/".to_string(), None),
            },
            None => {
                if user_part.chars().any(|c| c.is_whitespace() || c == '/') {
                    return Err(UserError::Spec(spec.to_string()));
                }
                let p = passwd.iter().find(|p| p.name == user_part).ok_or_else(|| {
                    UserError::NoUser {
                        name: user_part.to_string(),
                    }
                })?;
                (p.uid, p.gid, p.home.clone(), Some(p.name.clone()))
            }
        };

    let mut out = ResolvedUser {
        uid,
        gid,
        groups: Vec::new(),
        home: if home.is_empty() {
            "/".to_string()
        } else {
            home
        },
        name,
    };
    match group_part {
        Some(g) => {
            out.gid = match parse_id(g) {
                Some(gid) => gid,
                None => {
                    groups
                        .iter()
                        .find(|e| e.name == g)
                        .ok_or_else(|| UserError::NoGroup {
                            name: g.to_string(),
                        })?
                        .gid
                }
            };
        }
        None => {
            if let Some(name) = &out.name {
                for g in groups
                    .iter()
                    .filter(|g| g.members.iter().any(|m| m == name))
                {
                    if !out.groups.contains(&g.gid) {
                        out.groups.push(g.gid);
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n\
        broken line\n\
        nohome:x:1001:100:::/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
        users:x:100:\n\
        app:x:1000:\n\
        docker:x:999:app,other\n\
        audio:x:29:other,app\n";

    fn r(spec: Option<&str>) -> Result<ResolvedUser, UserError> {
        resolve(spec, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    #[test]
    fn default_is_root() {
        let u = r(None).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert!(u.groups.is_empty());
    }

    #[test]
    fn name_resolves_with_supplementary_groups() {
        let u = r(Some("app")).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.groups, vec![999, 29]);
        assert_eq!(u.home, "/home/app");
    }

    #[test]
    fn numeric_uid_uses_passwd_entry_when_present() {
        let u = r(Some("1000")).unwrap();
        assert_eq!((u.uid, u.gid, u.name.as_deref()), (1000, 1000, Some("app")));
        assert_eq!(u.groups, vec![999, 29]);
    }

    #[test]
    fn unknown_numeric_uid_is_allowed_with_gid_0() {
        let u = r(Some("4242")).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        assert!(u.groups.is_empty());
    }

    #[test]
    fn explicit_group_replaces_primary_and_drops_supplementary() {
        let u = r(Some("app:users")).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 100));
        assert!(u.groups.is_empty());
        let u = r(Some("4242:4343")).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 4343));
    }

    #[test]
    fn empty_home_becomes_root_dir() {
        assert_eq!(r(Some("nohome")).unwrap().home, "/");
    }

    #[test]
    fn errors_name_the_missing_user_or_group() {
        assert_eq!(
            r(Some("ghost")),
            Err(UserError::NoUser {
                name: "ghost".into()
            })
        );
        assert_eq!(
            r(Some("app:ghosts")),
            Err(UserError::NoGroup {
                name: "ghosts".into()
            })
        );
        assert!(matches!(r(Some("app:")), Err(UserError::Spec(_))));
        assert!(matches!(r(Some("a:b:c")), Err(UserError::Spec(_))));
        assert!(
            r(Some("ghost"))
                .unwrap_err()
                .to_string()
                .contains("/etc/passwd")
        );
    }
}
