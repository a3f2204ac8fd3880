//! Unprivileged host users for rootless tests: created on demand (needs root), with or without
//! subordinate id ranges in `/etc/subuid` and `/etc/subgid`.

use std::fs::{self, File};
use std::path::Path;
use std::process::Command;

/// Serialises edits of /etc/passwd, /etc/subuid and /etc/subgid between tests (and test
/// processes: the lock is a file).
fn users_lock() -> File {
    let f = File::create("/tmp/drydock-test-users.lock").expect("create the users lock file");
    f.lock().expect("lock the users lock file");
    f
}

/// `id <flag> <user>` (`-u` or `-g`), or `None` when there is no such user.
fn id_of(user: &str, flag: &str) -> Option<u32> {
    let o = Command::new("id").args([flag, user]).output().ok()?;
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

/// Creates `user` (a system user without a home, shell `/usr/sbin/nologin`) if it is missing,
/// and returns its (uid, gid).
///
/// With `subids`, makes sure it has subordinate ids in `/etc/subuid` and `/etc/subgid`: a user
/// without a range there gets 65536 ids starting past every range already handed out (and at
/// 400000 at the least); a range it already has is kept. Without `subids`, removes any range it
/// has. Needs root; edits are serialised under a lock file shared by test processes.
pub fn ensure_user_with_subids(user: &str, subids: bool) -> (u32, u32) {
    let _lock = users_lock();
    if id_of(user, "-u").is_none() {
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ])
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd {user} failed");
    }
    let prefix = format!("{user}:");
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = fs::read_to_string(file).unwrap_or_default();
        let has = text.lines().any(|l| l.starts_with(&prefix));
        if subids && !has {
            // Past every range already handed out.
            let end = text
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    Some(f.get(1)?.parse::<u64>().ok()? + f.get(2)?.parse::<u64>().ok()?)
                })
                .max()
                .unwrap_or(0)
                .max(400_000);
            let mut text = text;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("{user}:{end}:65536\n"));
            fs::write(file, text).unwrap_or_else(|e| panic!("write {file}: {e}"));
        } else if !subids && has {
            let kept: String = text
                .lines()
                .filter(|l| !l.starts_with(&prefix))
                .map(|l| format!("{l}\n"))
                .collect();
            fs::write(file, kept).unwrap_or_else(|e| panic!("write {file}: {e}"));
        }
    }
    let uid = id_of(user, "-u").unwrap_or_else(|| panic!("no uid for {user}"));
    let gid = id_of(user, "-g").unwrap_or_else(|| panic!("no gid for {user}"));
    (uid, gid)
}

/// The first id of `user`'s range in `file` (`/etc/subuid` or `/etc/subgid`); panics when it
/// has none.
pub fn subid_start(file: &str, user: &str) -> u32 {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
    let prefix = format!("{user}:");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{file} has no range for {user}"));
    line.split(':')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad line in {file}: {line}"))
}

/// `chown -R -h uid:gid path`: gives a tree (symlinks themselves, not their targets) to a user;
/// panics when it fails.
pub fn chown_recursive(path: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .args(["-R", "-h", &format!("{uid}:{gid}")])
        .arg(path)
        .status()
        .expect("run chown");
    assert!(st.success(), "chown -R {}", path.display());
}
