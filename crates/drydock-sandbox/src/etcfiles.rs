//! Contents of the files the sandbox provides without writing them into the layer:
//! `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`.

use crate::spec::{HostEntry, NetworkMode};

/// `/etc/hosts`: the host's file in host-network mode, else loopback names; then the hostname and
/// the extra entries (a pipeline's service names).
pub fn hosts(
    network: NetworkMode,
    host_hosts: Option<&str>,
    hostname: &str,
    extra: &[HostEntry],
) -> String {
    let mut out = String::new();
    match (network, host_hosts) {
        (NetworkMode::Host, Some(h)) => {
            out.push_str(h);
            if !out.ends_with('\n') && !out.is_empty() {
                out.push('\n');
            }
        }
        _ => {
            out.push_str("127.0.0.1\tlocalhost\n");
            out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
        }
    }
    if !hostname.is_empty() {
        out.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    for e in extra {
        if !e.names.is_empty() {
            out.push_str(&format!("{}\t{}\n", e.ip, e.names.join(" ")));
        }
    }
    out
}

/// `/etc/resolv.conf`: the given text, else the host's; loopback nameservers (a local stub
/// resolver) are unreachable from a private network namespace, so they are dropped there.
pub fn resolv_conf(network: NetworkMode, given: Option<&str>, host: Option<&str>) -> String {
    if let Some(g) = given {
        return g.to_string();
    }
    let host = host.unwrap_or("");
    match network {
        NetworkMode::Host => host.to_string(),
        NetworkMode::None => host
            .lines()
            .filter(|l| {
                let mut f = l.split_whitespace();
                !(f.next() == Some("nameserver")
                    && f.next()
                        .is_some_and(|ip| ip.starts_with("127.") || ip == "::1"))
            })
            .map(|l| format!("{l}\n"))
            .collect(),
    }
}

pub fn hostname(name: &str) -> String {
    format!("{name}\n")
}

/// Whether `name` is a valid hostname (RFC 1123 labels, at most 64 bytes as `sethostname` takes).
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_for_private_network_with_services() {
        let extra = vec![HostEntry {
            ip: "10.0.0.2".parse().unwrap(),
            names: vec!["db".into(), "postgres".into()],
        }];
        let h = hosts(NetworkMode::None, Some("1.2.3.4 ignored\n"), "job1", &extra);
        assert_eq!(
            h,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tjob1\n10.0.0.2\tdb postgres\n"
        );
    }

    #[test]
    fn hosts_for_host_network_keep_the_hosts_file() {
        let h = hosts(
            NetworkMode::Host,
            Some("127.0.0.1 localhost myhost"),
            "b",
            &[],
        );
        assert_eq!(h, "127.0.0.1 localhost myhost\n127.0.1.1\tb\n");
    }

    #[test]
    fn resolv_conf_drops_loopback_servers_without_host_network() {
        let host = "nameserver 127.0.0.53\nnameserver 9.9.9.9\nsearch example.com\n";
        assert_eq!(
            resolv_conf(NetworkMode::None, None, Some(host)),
            "nameserver 9.9.9.9\nsearch example.com\n"
        );
        assert_eq!(resolv_conf(NetworkMode::Host, None, Some(host)), host);
        assert_eq!(resolv_conf(NetworkMode::Host, Some("x"), Some(host)), "x");
    }

    #[test]
    fn hostnames() {
        assert!(valid_hostname("build-1.local"));
        assert!(!valid_hostname("-bad") && !valid_hostname("") && !valid_hostname("a b"));
        assert!(!valid_hostname(&"a".repeat(65)));
    }
}
