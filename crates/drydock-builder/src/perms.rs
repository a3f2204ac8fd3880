//! `--chmod` (octal or symbolic, as chmod(1)) and `--chown` (names looked up in the destination's
//! `/etc/passwd` and `/etc/group`, as BuildKit does).

use drydock_plan::Owner;
use drydock_sandbox::users::{GroupEntry, PasswdEntry};

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeSpec {
    /// `0755`: replaces the permission bits (and setuid/setgid/sticky).
    Octal(u32),
    /// `u+x,go-w`: changes applied in order.
    Symbolic(Vec<Clause>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    who: u32,
    op: char,
    perms: Vec<char>,
}

impl ModeSpec {
    pub fn parse(s: &str) -> Result<ModeSpec, String> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            let v = u32::from_str_radix(s, 8).map_err(|e| format!("invalid mode {s:?}: {e}"))?;
            if v > 0o7777 {
                return Err(format!("invalid mode {s:?}: more than 4 octal digits"));
            }
            return Ok(ModeSpec::Octal(v));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let mut chars = part.chars().peekable();
            let mut who = 0;
            while let Some(&c) = chars.peek() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => break,
                };
                chars.next();
            }
            let mut any = false;
            while let Some(op) = chars.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return Err(format!(
                        "invalid mode {s:?}: expected an octal mode or [ugoa][+-=][rwxXst]"
                    ));
                }
                let mut perms = Vec::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, 'r' | 'w' | 'x' | 'X' | 's' | 't' | 'u' | 'g' | 'o') {
                        perms.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                clauses.push(Clause { who, op, perms });
                any = true;
            }
            if !any {
                return Err(format!(
                    "invalid mode {s:?}: expected an octal mode or [ugoa][+-=][rwxXst]"
                ));
            }
        }
        Ok(ModeSpec::Symbolic(clauses))
    }

    /// The new permission bits for an entry whose current mode is `old` (permission bits only).
    pub fn apply(&self, old: u32, is_dir: bool) -> u32 {
        match self {
            ModeSpec::Octal(v) => *v,
            ModeSpec::Symbolic(clauses) => {
                let mut m = old & 0o7777;
                for c in clauses {
                    // No `who`: all, minus the umask (none here, as BuildKit).
                    let who = if c.who == 0 { 0o7777 } else { c.who };
                    let mut bits = 0;
                    for p in &c.perms {
                        bits |= match p {
                            'r' => 0o444,
                            'w' => 0o222,
                            'x' => 0o111,
                            'X' if is_dir || old & 0o111 != 0 => 0o111,
                            'X' => 0,
                            's' => 0o6000,
                            't' => 0o1000,
                            'u' => {
                                let u = (m >> 6) & 7;
                                u | (u << 3) | (u << 6)
                            }
                            'g' => {
                                let g = (m >> 3) & 7;
                                g | (g << 3) | (g << 6)
                            }
                            'o' => {
                                let o = m & 7;
                                o | (o << 3) | (o << 6)
                            }
                            _ => 0,
                        };
                    }
                    let bits = bits & who;
                    m = match c.op {
                        '+' => m | bits,
                        '-' => m & !bits,
                        _ => (m & !(who & 0o777 | who & 0o7000)) | bits,
                    };
                }
                m
            }
        }
    }
}

fn numeric(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Resolves `--chown` against the destination's user and group files. `user` alone: its uid
/// and primary group for a name, `uid:uid` for a number (BuildKit's rule).
pub fn resolve_owner(
    owner: &Owner,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<(u32, u32), String> {
    let (uid, mut gid) = match numeric(&owner.user) {
        Some(u) => (u, u),
        None if owner.user.is_empty() => (0, 0),
        None => {
            let p = passwd
                .iter()
                .find(|p| p.name == owner.user)
                .ok_or_else(|| {
                    format!(
                        "unable to find user {}: no matching entries in the destination's /etc/passwd",
                        owner.user
                    )
                })?;
            (p.uid, p.gid)
        }
    };
    if let Some(g) = &owner.group {
        gid = match numeric(g) {
            Some(g) => g,
            None => {
                groups
                    .iter()
                    .find(|e| e.name == *g)
                    .ok_or_else(|| {
                        format!(
                            "unable to find group {g}: no matching entries in the destination's /etc/group"
                        )
                    })?
                    .gid
            }
        };
    }
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use drydock_sandbox::users::{parse_group, parse_passwd};

    #[test]
    fn octal_and_symbolic_modes() {
        assert_eq!(ModeSpec::parse("0755").unwrap().apply(0o600, false), 0o755);
        assert_eq!(ModeSpec::parse("4755").unwrap().apply(0o600, false), 0o4755);
        let s = |m: &str, old: u32, dir: bool| ModeSpec::parse(m).unwrap().apply(old, dir);
        assert_eq!(s("u+x", 0o644, false), 0o744);
        assert_eq!(s("go-r", 0o644, false), 0o600);
        assert_eq!(s("a=r", 0o755, false), 0o444);
        assert_eq!(s("u=rwx,g=rx,o=", 0o600, false), 0o750);
        assert_eq!(s("+x", 0o644, false), 0o755);
        assert_eq!(s("a+X", 0o644, false), 0o644);
        assert_eq!(s("a+X", 0o644, true), 0o755);
        assert_eq!(s("g=u", 0o740, false), 0o770);
        assert_eq!(s("u+s", 0o755, false), 0o4755);
        assert!(ModeSpec::parse("z+x").is_err());
        assert!(ModeSpec::parse("u+x,").is_err());
        assert!(ModeSpec::parse("99999").is_err());
    }

    #[test]
    fn owners_like_buildkit() {
        let pw = parse_passwd("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n");
        let gr = parse_group("root:x:0:\napp:x:1001:\nstaff:x:50:\n");
        let o = |s: &str| resolve_owner(&Owner::parse(s), &pw, &gr);
        assert_eq!(o("app"), Ok((1000, 1001)));
        assert_eq!(o("app:staff"), Ok((1000, 50)));
        assert_eq!(o("1234"), Ok((1234, 1234)));
        assert_eq!(o("1234:5"), Ok((1234, 5)));
        assert_eq!(o("0:app"), Ok((0, 1001)));
        assert!(
            o("nobody")
                .unwrap_err()
                .contains("unable to find user nobody")
        );
        assert!(o("app:nogroup").unwrap_err().contains("group nogroup"));
    }
}
