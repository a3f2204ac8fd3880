//! cgroup placement and limits: which directories a run gets, in which hierarchy (v1 per
//! controller, or the unified v2 tree), and which files hold its limits. [`locate`] and [`plan`]
//! are pure; [`create`], [`remove`] do the file-system work (from the calling process, before the
//! sandbox init joins the directories).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spec::Limits;

/// Where the cgroup hierarchies are and where this process sits in them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchies {
    /// v1: (controller, mount point, own path relative to the mount).
    pub v1: Vec<(String, PathBuf, String)>,
    /// v2: (mount point, own path).
    pub v2: Option<(PathBuf, String)>,
}

/// Reads `/proc/self/mountinfo` and `/proc/self/cgroup` contents.
pub fn locate(mountinfo: &str, proc_cgroup: &str) -> Hierarchies {
    let mut h = Hierarchies::default();
    // /proc/self/cgroup: "ID:controllers:path"; v2 is "0::path".
    let own: Vec<(String, String)> = proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            Some((ctrl.to_string(), path.to_string()))
        })
        .collect();
    for line in mountinfo.lines() {
        // id parent maj:min root mountpoint opts [optional...] - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let lf: Vec<&str> = left.split(' ').collect();
        let rf: Vec<&str> = right.split(' ').collect();
        if lf.len() < 5 || rf.len() < 3 {
            continue;
        }
        let (root, mountpoint) = (unescape(lf[3]), PathBuf::from(unescape(lf[4])));
        let relative = |path: &str| -> String {
            if root == "/" {
                path.to_string()
            } else {
                path.strip_prefix(root.as_str())
                    .map(|p| if p.is_empty() { "/" } else { p })
                    .unwrap_or("/")
                    .to_string()
            }
        };
        match rf[0] {
            "cgroup2" => {
                if let Some((_, p)) = own.iter().find(|(c, _)| c.is_empty()) {
                    h.v2.get_or_insert((mountpoint, relative(p)));
                }
            }
            "cgroup" => {
                for opt in rf[2].split(',') {
                    if !matches!(opt, "memory" | "pids" | "cpu") {
                        continue;
                    }
                    if h.v1.iter().any(|(c, _, _)| c == opt) {
                        continue;
                    }
                    if let Some((_, p)) = own.iter().find(|(c, _)| c.split(',').any(|c| c == opt)) {
                        h.v1.push((opt.to_string(), mountpoint.clone(), relative(p)));
                    }
                }
            }
            _ => {}
        }
    }
    h
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One limit file write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub file: String,
    pub value: String,
    /// Skipped silently when the file does not exist (e.g. swap accounting off).
    pub optional: bool,
}

/// A cgroup directory a run gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDir {
    pub path: PathBuf,
    pub v2: bool,
    pub settings: Vec<Setting>,
}

/// The cgroups of one run, plus limits that no hierarchy here can enforce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub dirs: Vec<CgroupDir>,
    /// Controllers to enable in the v2 parent's `cgroup.subtree_control`.
    pub v2_enable: Vec<String>,
    pub unenforced: Vec<String>,
}

fn set(file: &str, value: impl ToString) -> Setting {
    Setting {
        file: file.to_string(),
        value: value.to_string(),
        optional: false,
    }
}

const CPU_PERIOD_US: u64 = 100_000;

/// Decides the cgroups for a run. `v2_controllers` is the content of `cgroup.controllers` of the
/// v2 parent directory (controllers available for delegation).
pub fn plan(h: &Hierarchies, run_id: &str, limits: &Limits, v2_controllers: &str) -> Plan {
    let mut plan = Plan::default();
    let leaf = format!("drydock-{run_id}");
    let v1_dir = |ctrl: &str| {
        h.v1.iter()
            .find(|(c, _, _)| c == ctrl)
            .map(|(_, mnt, own)| join(mnt, own).join(&leaf))
    };
    let v2_has = |ctrl: &str| v2_controllers.split_whitespace().any(|c| c == ctrl);
    let mut v2_settings = Vec::new();

    let mut want = |ctrl: &str, v1: Vec<Setting>, v2: Vec<Setting>, what: String| {
        if let Some(path) = v1_dir(ctrl) {
            plan.dirs.push(CgroupDir {
                path,
                v2: false,
                settings: v1,
            });
        } else if h.v2.is_some() && v2_has(ctrl) {
            plan.v2_enable.push(ctrl.to_string());
            v2_settings.extend(v2);
        } else {
            plan.unenforced.push(what);
        }
    };
    if let Some(m) = limits.memory_bytes {
        want(
            "memory",
            vec![
                set("memory.limit_in_bytes", m),
                Setting {
                    optional: true,
                    ..set("memory.memsw.limit_in_bytes", m)
                },
            ],
            vec![
                set("memory.max", m),
                Setting {
                    optional: true,
                    ..set("memory.swap.max", 0)
                },
            ],
            format!("memory limit of {m} bytes"),
        );
    }
    if let Some(p) = limits.pids {
        want(
            "pids",
            vec![set("pids.max", p)],
            vec![set("pids.max", p)],
            format!("pids limit of {p}"),
        );
    }
    if let Some(c) = limits.cpu_millis {
        let quota = (c * CPU_PERIOD_US / 1000).max(1000);
        want(
            "cpu",
            vec![
                set("cpu.cfs_period_us", CPU_PERIOD_US),
                set("cpu.cfs_quota_us", quota),
            ],
            vec![set("cpu.max", format!("{quota} {CPU_PERIOD_US}"))],
            format!("cpu limit of {c} millicpus"),
        );
    }
    if let Some((mnt, own)) = &h.v2
        && !v2_settings.is_empty()
    {
        plan.dirs.push(CgroupDir {
            path: join(mnt, own).join(&leaf),
            v2: true,
            settings: v2_settings,
        });
    }
    plan
}

fn join(mnt: &Path, own: &str) -> PathBuf {
    let own = own.trim_start_matches('/');
    if own.is_empty() {
        mnt.to_path_buf()
    } else {
        mnt.join(own)
    }
}

/// Creates the directories and writes the limits. On error, what was created is removed.
pub fn create(plan: &Plan) -> Result<(), (PathBuf, io::Error)> {
    let mut made: Vec<&CgroupDir> = Vec::new();
    let result = (|| {
        for dir in &plan.dirs {
            if dir.v2 && !plan.v2_enable.is_empty() {
                let parent = dir.path.parent().unwrap_or(Path::new("/"));
                let ctl = parent.join("cgroup.subtree_control");
                let line: String = plan.v2_enable.iter().map(|c| format!("+{c} ")).collect();
                fs::write(&ctl, line.trim_end()).map_err(|e| (ctl.clone(), e))?;
            }
            fs::create_dir(&dir.path).map_err(|e| (dir.path.clone(), e))?;
            made.push(dir);
            for s in &dir.settings {
                let f = dir.path.join(&s.file);
                if s.optional && !f.exists() {
                    continue;
                }
                fs::write(&f, &s.value).map_err(|e| (f.clone(), e))?;
            }
        }
        Ok(())
    })();
    if result.is_err() {
        for dir in made {
            let _ = fs::remove_dir(&dir.path);
        }
    }
    result
}

/// The `cgroup.procs` files the init writes its pid into.
pub fn procs_files(plan: &Plan) -> Vec<PathBuf> {
    plan.dirs
        .iter()
        .map(|d| d.path.join("cgroup.procs"))
        .collect()
}

/// Kills whatever is still in the run's cgroups and removes them.
pub fn remove(plan: &Plan) -> Vec<(PathBuf, io::Error)> {
    let mut errors = Vec::new();
    for dir in &plan.dirs {
        let mut last = None;
        for attempt in 0..100 {
            if let Ok(procs) = fs::read_to_string(dir.path.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    }
                }
            }
            match fs::remove_dir(&dir.path) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(if attempt < 10 { 1 } else { 10 }));
        }
        if let Some(e) = last {
            errors.push((dir.path.clone(), e));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    // This machine's kind: cgroup v1 controllers plus a controller-less unified tree.
    const MOUNTINFO_HYBRID: &str = "\
24 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 30 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const CGROUP_HYBRID: &str = "8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    const MOUNTINFO_V2: &str = "\
24 1 254:0 / / rw - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
";

    fn limits() -> Limits {
        Limits {
            memory_bytes: Some(64 << 20),
            pids: Some(100),
            cpu_millis: Some(500),
        }
    }

    #[test]
    fn hybrid_uses_v1_controllers_under_own_cgroup() {
        let h = locate(MOUNTINFO_HYBRID, CGROUP_HYBRID);
        assert_eq!(h.v1.len(), 3);
        assert_eq!(
            h.v2,
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()))
        );
        let p = plan(&h, "r1", &limits(), "hugetlb");
        let paths: Vec<_> = p.dirs.iter().map(|d| d.path.to_str().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "/sys/fs/cgroup/memory/process_api/abc/drydock-r1",
                "/sys/fs/cgroup/pids/drydock-r1",
                "/sys/fs/cgroup/cpu/drydock-r1"
            ]
        );
        assert_eq!(p.dirs[1].settings, vec![set("pids.max", 100)]);
        assert_eq!(p.dirs[2].settings[1], set("cpu.cfs_quota_us", 50_000));
        assert!(p.unenforced.is_empty() && p.v2_enable.is_empty());
    }

    #[test]
    fn pure_v2_enables_controllers_in_parent() {
        let h = locate(MOUNTINFO_V2, "0::/user.slice/run-1.scope\n");
        assert!(h.v1.is_empty());
        let p = plan(&h, "r2", &limits(), "cpuset cpu io memory pids");
        assert_eq!(p.dirs.len(), 1);
        assert_eq!(
            p.dirs[0].path,
            PathBuf::from("/sys/fs/cgroup/user.slice/run-1.scope/drydock-r2")
        );
        assert_eq!(p.v2_enable, ["memory", "pids", "cpu"]);
        assert!(p.dirs[0].settings.contains(&set("cpu.max", "50000 100000")));
    }

    #[test]
    fn missing_controllers_are_reported_not_faked() {
        let h = locate(MOUNTINFO_V2, "0::/\n");
        let p = plan(&h, "r3", &limits(), "cpu");
        assert_eq!(p.unenforced.len(), 2);
        assert!(p.unenforced[0].contains("memory"));
        assert_eq!(p.dirs.len(), 1);
    }

    #[test]
    fn no_limits_no_cgroups() {
        let h = locate(MOUNTINFO_HYBRID, CGROUP_HYBRID);
        assert_eq!(plan(&h, "r4", &Limits::default(), ""), Plan::default());
    }

    #[test]
    fn mount_root_is_stripped_from_own_path() {
        let mi = "40 30 0:33 /docker/x /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let h = locate(mi, "8:pids:/docker/x/inner\n");
        assert_eq!(
            h.v1,
            vec![("pids".into(), "/sys/fs/cgroup/pids".into(), "/inner".into())]
        );
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
