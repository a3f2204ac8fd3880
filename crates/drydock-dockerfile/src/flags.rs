//! Typed instruction flags: `--mount` options, `--network`, `--security`, and Go-style
//! durations for HEALTHCHECK.

use std::fmt;

/// A Go `time.Duration`-compatible duration, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub i64);

impl Duration {
    pub fn nanos(self) -> i64 {
        self.0
    }

    /// Parses Go's `time.ParseDuration` syntax: `300ms`, `1h30m`, `-1.5h`, `0`.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let orig = s;
        let err = || format!("time: invalid duration {orig:?}");
        let mut s = s;
        let mut neg = false;
        if let Some(rest) = s.strip_prefix('-') {
            neg = true;
            s = rest;
        } else if let Some(rest) = s.strip_prefix('+') {
            s = rest;
        }
        if s == "0" {
            return Ok(Duration(0));
        }
        if s.is_empty() {
            return Err(err());
        }
        let mut total: f64 = 0.0;
        while !s.is_empty() {
            let digits_end = s
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(s.len());
            let num = &s[..digits_end];
            if num.is_empty() || num == "." || num.matches('.').count() > 1 {
                return Err(err());
            }
            let value: f64 = num.parse().map_err(|_| err())?;
            s = &s[digits_end..];
            let unit_end = s
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(s.len());
            let unit = &s[..unit_end];
            let mult: f64 = match unit {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                "" => return Err(format!("time: missing unit in duration {orig:?}")),
                other => return Err(format!("time: unknown unit {other:?} in duration {orig:?}")),
            };
            s = &s[unit_end..];
            total += value * mult;
            if total > i64::MAX as f64 {
                return Err(err());
            }
        }
        let n = total.round() as i64;
        Ok(Duration(if neg { -n } else { n }))
    }
}

impl fmt::Display for Duration {
    /// Formats like Go: `30s`, `1m30s`, `1h0m0s`, `500ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut n = self.0;
        if n == 0 {
            return f.write_str("0s");
        }
        if n < 0 {
            f.write_str("-")?;
            n = n.saturating_neg();
        }
        if n < 1_000_000_000 {
            return if n % 1_000_000 == 0 {
                write!(f, "{}ms", n / 1_000_000)
            } else if n % 1000 == 0 {
                write!(f, "{}µs", n / 1000)
            } else {
                write!(f, "{n}ns")
            };
        }
        let h = n / 3_600_000_000_000;
        let m = (n / 60_000_000_000) % 60;
        let s = n % 60_000_000_000;
        let secs = if s % 1_000_000_000 == 0 {
            format!("{}", s / 1_000_000_000)
        } else {
            let mut t = format!("{:.9}", s as f64 / 1e9);
            while t.ends_with('0') {
                t.pop();
            }
            t
        };
        if h > 0 {
            write!(f, "{h}h{m}m{secs}s")
        } else if m > 0 {
            write!(f, "{m}m{secs}s")
        } else {
            write!(f, "{secs}s")
        }
    }
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

impl NetworkMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "default" => Some(NetworkMode::Default),
            "none" => Some(NetworkMode::None),
            "host" => Some(NetworkMode::Host),
            _ => None,
        }
    }
}

/// `RUN --security=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityMode {
    Sandbox,
    Insecure,
}

impl SecurityMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sandbox" => Some(SecurityMode::Sandbox),
            "insecure" => Some(SecurityMode::Insecure),
            _ => None,
        }
    }
}

/// Cache mount sharing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

impl Sharing {
    pub fn as_str(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::Private => "private",
            Sharing::Locked => "locked",
        }
    }
}

/// One `RUN --mount=...`, with BuildKit's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    Bind {
        target: String,
        /// A stage name, image reference or named context; `None` is the build context.
        from: Option<String>,
        source: String,
        readwrite: bool,
    },
    Cache {
        target: String,
        id: String,
        from: Option<String>,
        source: String,
        sharing: Sharing,
        readonly: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Tmpfs {
        target: String,
        /// Bytes; `None` is the kernel default.
        size: Option<u64>,
    },
    Secret {
        id: String,
        /// Where the secret file appears; `None` when only `env=` was asked for.
        target: Option<String>,
        env: Option<String>,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Ssh {
        id: String,
        target: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

impl Mount {
    pub fn target(&self) -> Option<&str> {
        match self {
            Mount::Bind { target, .. }
            | Mount::Cache { target, .. }
            | Mount::Tmpfs { target, .. }
            | Mount::Ssh { target, .. } => Some(target),
            Mount::Secret { target, .. } => target.as_deref(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Mount::Bind { .. } => "bind",
            Mount::Cache { .. } => "cache",
            Mount::Tmpfs { .. } => "tmpfs",
            Mount::Secret { .. } => "secret",
            Mount::Ssh { .. } => "ssh",
        }
    }

    /// The stage/image a bind or cache mount reads from.
    pub fn from(&self) -> Option<&str> {
        match self {
            Mount::Bind { from, .. } | Mount::Cache { from, .. } => from.as_deref(),
            _ => None,
        }
    }
}

/// Splits a `--mount` value into fields like Go's `encoding/csv` does (double quotes group,
/// `""` is a literal quote).
pub fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if c == '"' && at_field_start {
            at_field_start = false;
            loop {
                match chars.next() {
                    None => return Err(format!("extraneous or missing \" in quoted-field: {s}")),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        cur.push('"');
                    }
                    Some('"') => break,
                    Some(ch) => cur.push(ch),
                }
            }
            match chars.peek() {
                None | Some(',') => {}
                Some(_) => return Err(format!("extraneous or missing \" in quoted-field: {s}")),
            }
            continue;
        }
        at_field_start = false;
        if c == ',' {
            fields.push(std::mem::take(&mut cur));
            at_field_start = true;
        } else if c == '"' {
            return Err(format!("bare \" in non-quoted-field: {s}"));
        } else {
            cur.push(c);
        }
    }
    fields.push(cur);
    Ok(fields)
}

fn parse_bool(v: &str) -> Option<bool> {
    // Go's strconv.ParseBool.
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses a size like Docker's `units.RAMInBytes`: `64m`, `1g`, `512k`, `100`.
pub fn parse_ram_bytes(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024f64.powi(4),
        "p" | "pb" | "pib" => 1024f64.powi(5),
        _ => return None,
    };
    let v = n * mult;
    if !(0.0..1.8e19).contains(&v) {
        return None;
    }
    Some(v as u64)
}

const MOUNT_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "required",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "size",
    "env",
];

/// Parses one `--mount` value. `expand` is applied to every option value (BuildKit expands
/// build args there); pass `|v| Ok(v.to_string())` to parse without an environment.
///
/// `index` is the mount's position among the instruction's SSH mounts (for the default target).
pub fn parse_mount(
    value: &str,
    index: usize,
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Mount, String> {
    let fields = csv_fields(value)?;
    let mut typ = "bind".to_string();
    let mut from = None;
    let mut source = None;
    let mut target = None;
    let mut readonly: Option<bool> = None;
    let mut required = false;
    let mut id = None;
    let mut sharing = None;
    let mut mode = None;
    let mut uid = None;
    let mut gid = None;
    let mut size = None;
    let mut env = None;
    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(raw) = val else {
            match key.as_str() {
                "readonly" | "ro" => readonly = Some(true),
                "readwrite" | "rw" => readonly = Some(false),
                "required" if typ == "secret" || typ == "ssh" => required = true,
                "required" => {
                    return Err(format!("unexpected key 'required' for mount type '{typ}'"));
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let v = expand(raw)?;
        let num = |v: &str, radix: u32, what: &str| {
            u32::from_str_radix(v, radix).map_err(|_| format!("invalid {what} {v:?} in --mount"))
        };
        match key.as_str() {
            "type" => {
                let t = v.to_ascii_lowercase();
                if !["bind", "cache", "tmpfs", "secret", "ssh"].contains(&t.as_str()) {
                    return Err(format!(
                        "unsupported mount type {v:?} (expected bind, cache, tmpfs, secret or ssh)"
                    ));
                }
                typ = t;
            }
            "from" => from = Some(v),
            "source" | "src" => source = Some(v),
            "target" | "dst" | "destination" => target = Some(v),
            "readonly" | "ro" => {
                readonly =
                    Some(parse_bool(&v).ok_or_else(|| format!("invalid value for {key}: {v}"))?)
            }
            "readwrite" | "rw" => {
                readonly =
                    Some(!parse_bool(&v).ok_or_else(|| format!("invalid value for {key}: {v}"))?)
            }
            "required" => {
                if typ != "secret" && typ != "ssh" {
                    return Err(format!("unexpected key 'required' for mount type '{typ}'"));
                }
                required =
                    parse_bool(&v).ok_or_else(|| format!("invalid value for required: {v}"))?;
            }
            "id" => id = Some(v),
            "sharing" => {
                if typ != "cache" {
                    return Err(format!("invalid cache sharing set for {typ} mount"));
                }
                sharing = Some(match v.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(format!(
                            "unrecognized sharing parameter in mount: {v} (expected shared, private or locked)"
                        ));
                    }
                });
            }
            "mode" => mode = Some(num(&v, 8, "mode")?),
            "uid" => uid = Some(num(&v, 10, "uid")?),
            "gid" => gid = Some(num(&v, 10, "gid")?),
            "size" => {
                if typ != "tmpfs" {
                    return Err(format!("unexpected key 'size' for mount type '{typ}'"));
                }
                size = Some(
                    parse_ram_bytes(&v).ok_or_else(|| format!("invalid size {v:?} in --mount"))?,
                )
            }
            "env" => {
                if typ != "secret" {
                    return Err(format!("unexpected key 'env' for mount type '{typ}'"));
                }
                env = Some(v)
            }
            _ => {
                let mut msg = format!("unexpected key '{key}' in '{field}'");
                if let Some(s) = crate::suggest::closest(&key, MOUNT_KEYS.iter().copied()) {
                    msg.push_str(&format!(" (did you mean {s}?)"));
                }
                return Err(msg);
            }
        }
    }
    let file_info = matches!(typ.as_str(), "secret" | "ssh" | "cache");
    if !file_info {
        for (set, what) in [
            (mode.is_some(), "mode"),
            (uid.is_some(), "uid"),
            (gid.is_some(), "gid"),
        ] {
            if set {
                return Err(format!("{what} not allowed for {typ:?} type mounts"));
            }
        }
    }
    let need_target = |t: Option<String>| {
        t.filter(|t| !t.is_empty())
            .ok_or_else(|| format!("mount type {typ} requires a target"))
    };
    Ok(match typ.as_str() {
        "bind" => Mount::Bind {
            target: need_target(target)?,
            from: from.filter(|f| !f.is_empty()),
            source: source.unwrap_or_else(|| "/".into()),
            readwrite: readonly == Some(false),
        },
        "cache" => {
            let target = need_target(target)?;
            Mount::Cache {
                id: id
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| target.clone()),
                target,
                from: from.filter(|f| !f.is_empty()),
                source: source.unwrap_or_else(|| "/".into()),
                sharing: sharing.unwrap_or(Sharing::Shared),
                readonly: readonly.unwrap_or(false),
                mode: mode.unwrap_or(0o755),
                uid: uid.unwrap_or(0),
                gid: gid.unwrap_or(0),
            }
        }
        "tmpfs" => Mount::Tmpfs {
            target: need_target(target)?,
            size,
        },
        "secret" => {
            if from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if source.is_some() && id.is_some() {
                return Err("both source and id can't be set".into());
            }
            let id = id.or(source).filter(|s| !s.is_empty());
            let target = target.filter(|t| !t.is_empty());
            let id = match (id, &target) {
                (Some(id), _) => id,
                (None, Some(t)) => t
                    .rsplit('/')
                    .find(|s| !s.is_empty())
                    .unwrap_or(t)
                    .to_string(),
                (None, None) => {
                    return Err(
                        "invalid secret mount: one of id, source or target is required".into(),
                    );
                }
            };
            let target = match (target, &env) {
                (Some(t), _) => Some(t),
                (None, Some(_)) => None,
                (None, None) => Some(format!("/run/secrets/{id}")),
            };
            Mount::Secret {
                id,
                target,
                env,
                required,
                mode: mode.unwrap_or(0o400),
                uid: uid.unwrap_or(0),
                gid: gid.unwrap_or(0),
            }
        }
        _ => Mount::Ssh {
            id: id
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".into()),
            target: target
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{index}")),
            required,
            mode: mode.unwrap_or(0o600),
            uid: uid.unwrap_or(0),
            gid: gid.unwrap_or(0),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Mount {
        parse_mount(s, 0, &mut |v| Ok(v.to_string())).unwrap()
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(Duration::parse("30s").unwrap().0, 30_000_000_000);
        assert_eq!(Duration::parse("1h30m").unwrap().0, 5_400_000_000_000);
        assert_eq!(Duration::parse("1.5s").unwrap().0, 1_500_000_000);
        assert_eq!(Duration::parse("0").unwrap().0, 0);
        assert!(Duration::parse("10").is_err());
        assert!(Duration::parse("").is_err());
        assert!(Duration::parse("5 s").is_err());
        assert!(Duration::parse("1d").is_err());
        assert_eq!(Duration::parse("90s").unwrap().to_string(), "1m30s");
        assert_eq!(Duration::parse("2h").unwrap().to_string(), "2h0m0s");
        assert_eq!(Duration::parse("250ms").unwrap().to_string(), "250ms");
    }

    #[test]
    fn mount_defaults() {
        assert_eq!(
            ok("type=cache,target=/root/.cache"),
            Mount::Cache {
                target: "/root/.cache".into(),
                id: "/root/.cache".into(),
                from: None,
                source: "/".into(),
                sharing: Sharing::Shared,
                readonly: false,
                mode: 0o755,
                uid: 0,
                gid: 0
            }
        );
        assert_eq!(
            ok("type=secret,id=npmrc"),
            Mount::Secret {
                id: "npmrc".into(),
                target: Some("/run/secrets/npmrc".into()),
                env: None,
                required: false,
                mode: 0o400,
                uid: 0,
                gid: 0
            }
        );
        assert!(matches!(
            ok("target=/src,rw"),
            Mount::Bind {
                readwrite: true,
                ..
            }
        ));
        assert!(matches!(ok("type=ssh"), Mount::Ssh { ref id, .. } if id == "default"));
    }

    #[test]
    fn mount_errors() {
        let e = |s: &str| parse_mount(s, 0, &mut |v| Ok(v.to_string())).unwrap_err();
        assert!(e("type=volume,target=/x").contains("unsupported mount type"));
        assert!(e("type=bind,target=/x,mode=0700").contains("mode not allowed"));
        assert!(e("type=bind,taget=/x").contains("did you mean target?"));
        assert!(e("type=bind").contains("requires a target"));
        assert!(e("type=bind,sharing=locked,target=/x").contains("sharing"));
        assert!(e("type=cache,target=/x,foo").contains("key=value"));
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(csv_fields(r#"a,"b,c",d"#).unwrap(), ["a", "b,c", "d"]);
        assert_eq!(csv_fields(r#""x""y""#).unwrap(), [r#"x"y"#]);
        assert!(csv_fields(r#"a"b"#).is_err());
    }
}
