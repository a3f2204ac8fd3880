//! Linux capabilities: names, numbers, and Docker's default set.

/// Capability names indexed by number (linux/capability.h).
pub const NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability {0:?}: expected a name such as CAP_CHOWN or chown")]
pub struct UnknownCapability(pub String);

/// The number of a capability given as `CAP_CHOWN`, `chown` or `cap_chown`.
pub fn number(name: &str) -> Result<u8, UnknownCapability> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES
        .iter()
        .position(|n| *n == full)
        .map(|i| i as u8)
        .ok_or_else(|| UnknownCapability(name.to_string()))
}

/// A set of capabilities as a bit mask (bit n = capability n).
pub fn mask<S: AsRef<str>>(names: &[S]) -> Result<u64, UnknownCapability> {
    names
        .iter()
        .try_fold(0u64, |m, n| Ok(m | (1u64 << number(n.as_ref())?)))
}

/// The set the command gets: `requested`, or Docker's default.
pub fn effective_set(requested: Option<&[String]>) -> Result<u64, UnknownCapability> {
    match requested {
        Some(list) => mask(list),
        None => mask(DOCKER_DEFAULT),
    }
}

/// Capabilities to drop from the bounding set: every known one (up to `last_cap`, from
/// `/proc/sys/kernel/cap_last_cap`) not in `keep`.
pub fn to_drop(keep: u64, last_cap: u8) -> Vec<u8> {
    (0..=last_cap.min(63))
        .filter(|c| keep & (1u64 << c) == 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(number("CAP_CHOWN"), Ok(0));
        assert_eq!(number("sys_admin"), Ok(21));
        assert_eq!(number("cap_setfcap"), Ok(31));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Ok(40));
        assert!(number("CAP_FLY").is_err());
    }

    #[test]
    fn docker_default_set_has_no_admin_module_or_ptrace() {
        let m = effective_set(None).unwrap();
        assert_eq!(m.count_ones() as usize, DOCKER_DEFAULT.len());
        for forbidden in [
            "SYS_ADMIN",
            "SYS_MODULE",
            "SYS_PTRACE",
            "NET_ADMIN",
            "DAC_READ_SEARCH",
        ] {
            assert_eq!(m & (1 << number(forbidden).unwrap()), 0, "{forbidden}");
        }
        for allowed in ["CHOWN", "SETUID", "KILL", "NET_BIND_SERVICE"] {
            assert_ne!(m & (1 << number(allowed).unwrap()), 0, "{allowed}");
        }
    }

    #[test]
    fn drop_list_is_complement_up_to_last_cap() {
        let keep = mask(&["CAP_CHOWN", "CAP_KILL"]).unwrap();
        let drop = to_drop(keep, 40);
        assert_eq!(drop.len(), 39);
        assert!(!drop.contains(&0) && !drop.contains(&5) && drop.contains(&21));
    }
}
