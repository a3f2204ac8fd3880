//! User-namespace id maps: the caller's own id plus its subordinate range from `/etc/subuid` /
//! `/etc/subgid`, in the form `newuidmap`/`newgidmap` and `/proc/PID/uid_map` take.

use serde::{Deserialize, Serialize};

/// One line of an id map: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// A subordinate range from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRange {
    pub start: u32,
    pub count: u32,
}

/// The ranges of `/etc/subuid`-format `text` that belong to the user `name` or numeric `id`.
pub fn parse_subid(text: &str, name: Option<&str>, id: u32) -> Vec<SubRange> {
    let id_str = id.to_string();
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let mut f = line.split(':');
            let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
            if owner != id_str && Some(owner) != name {
                return None;
            }
            let r = SubRange {
                start: start.trim().parse().ok()?,
                count: count.trim().parse().ok()?,
            };
            (r.count > 0).then_some(r)
        })
        .collect()
}

/// The rootless map: inside 0 is the caller (`own`), inside 1.. are the subordinate ranges in
/// order. Without subordinate ranges, only root is mapped (a single-id sandbox).
pub fn rootless_map(own: u32, subs: &[SubRange]) -> Vec<IdRange> {
    let mut map = vec![IdRange {
        inside: 0,
        outside: own,
        count: 1,
    }];
    let mut next = 1u32;
    for r in subs {
        map.push(IdRange {
            inside: next,
            outside: r.start,
            count: r.count,
        });
        next = next.saturating_add(r.count);
    }
    map
}

/// `/proc/PID/uid_map` text.
pub fn map_text(map: &[IdRange]) -> String {
    map.iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// Arguments for `newuidmap PID ...` / `newgidmap PID ...` after the pid.
pub fn helper_args(map: &[IdRange]) -> Vec<String> {
    map.iter()
        .flat_map(|r| {
            [
                r.inside.to_string(),
                r.outside.to_string(),
                r.count.to_string(),
            ]
        })
        .collect()
}

/// Whether `id` (inside) is mapped.
pub fn is_mapped(map: &[IdRange], id: u32) -> bool {
    map.iter()
        .any(|r| id >= r.inside && id - r.inside < r.count)
}

/// The outside id for inside id `id`.
pub fn to_outside(map: &[IdRange], id: u32) -> Option<u32> {
    map.iter()
        .find(|r| id >= r.inside && id - r.inside < r.count)
        .map(|r| r.outside + (id - r.inside))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBUID: &str = "alice:100000:65536\n# comment\nbob:165536:65536\n1003:231072:1000\nalice:300000:10\nbad line\n";

    #[test]
    fn parse_by_name_or_number() {
        assert_eq!(
            parse_subid(SUBUID, Some("alice"), 1001),
            vec![
                SubRange {
                    start: 100000,
                    count: 65536
                },
                SubRange {
                    start: 300000,
                    count: 10
                }
            ]
        );
        assert_eq!(
            parse_subid(SUBUID, Some("carol"), 1003),
            vec![SubRange {
                start: 231072,
                count: 1000
            }]
        );
        assert!(parse_subid(SUBUID, Some("dave"), 1004).is_empty());
    }

    #[test]
    fn rootless_map_puts_caller_at_root_and_ranges_after() {
        let subs = parse_subid(SUBUID, Some("alice"), 1001);
        let map = rootless_map(1001, &subs);
        assert_eq!(
            map_text(&map),
            "0 1001 1\n1 100000 65536\n65537 300000 10\n"
        );
        assert_eq!(
            helper_args(&map)[..6],
            ["0", "1001", "1", "1", "100000", "65536"]
        );
        assert!(is_mapped(&map, 0) && is_mapped(&map, 65546) && !is_mapped(&map, 65547));
        assert_eq!(to_outside(&map, 1000), Some(100999));
        assert_eq!(to_outside(&map, 65537), Some(300000));
    }

    #[test]
    fn without_subordinate_ids_only_root_is_mapped() {
        let map = rootless_map(1001, &[]);
        assert_eq!(map_text(&map), "0 1001 1\n");
        assert!(!is_mapped(&map, 1));
    }
}
