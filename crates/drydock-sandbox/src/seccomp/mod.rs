//! The default seccomp filter, compiled to classic BPF here (no libseccomp).
//!
//! The rule list follows Docker's default profile for a container without `CAP_SYS_ADMIN`: an
//! allow-list of ordinary syscalls; `clone` only without namespace flags; `clone3` answers
//! `ENOSYS` (so libc falls back to `clone`, whose flags can be inspected); `personality` only with
//! the harmless personas; everything else (mount, unshare, setns, module loading, kexec, bpf,
//! perf, keyrings, ptrace-like `process_vm_*` excepted, io_uring, the new mount API...) fails with
//! `EPERM`. Syscall numbers above the highest known one fail with `ENOSYS`, so newer libcs degrade
//! gracefully. Foreign architectures and the x32 ABI get `EPERM` (stricter than Docker, which
//! allows i386 and x32 with their own tables).
//!
//! The compiled program is a binary decision tree over syscall-number ranges (a few comparisons
//! per syscall rather than a linear scan of hundreds).

mod table;

use std::collections::BTreeMap;

/// `seccomp_data` offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGE_K: u16 = 0x35;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

pub const RET_ALLOW: u32 = 0x7fff_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
#[cfg_attr(not(any(test, target_arch = "aarch64")), allow(dead_code))]
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const EPERM: u16 = 1;
const ENOSYS: u16 = 38;

/// One BPF instruction, layout-compatible with the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// What happens to one syscall number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Allow,
    Errno(u16),
    /// Allowed when none of the bits of `mask` (low 32 bits of argument `arg`) is set.
    AllowIfMaskClear {
        arg: u8,
        mask: u32,
    },
    /// Allowed when argument `arg` equals one of `values` (32-bit values, upper half zero).
    AllowIfOneOf {
        arg: u8,
        values: Vec<u32>,
    },
}

/// A filter before compilation: per-number rules for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub audit_arch: u32,
    /// Numbers with their own rule; absent numbers up to the highest one get `default_errno`.
    pub rules: BTreeMap<u32, Rule>,
    pub default_errno: u16,
    /// Numbers above the highest known syscall get this errno.
    pub unknown_errno: u16,
    pub highest_known: u32,
    pub deny_x32: bool,
}

/// Syscalls allowed without conditions (Docker's default profile, no extra capabilities).
pub const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chroot",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "process_vm_readv",
    "process_vm_writev",
    "pselect6",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socket",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// Namespace flags `clone` may not carry (CLONE_NEWNS/CGROUP/UTS/IPC/USER/PID/NET, TIME).
pub const CLONE_NAMESPACE_FLAGS: u32 = 0x0002_0000
    | 0x0200_0000
    | 0x0400_0000
    | 0x0800_0000
    | 0x1000_0000
    | 0x2000_0000
    | 0x4000_0000
    | 0x80;

/// Personas `personality` may set (PER_LINUX, UNAME26, PER_LINUX32, and 0xffffffff = query).
pub const PERSONALITIES: &[u32] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The syscall table of the architecture this binary runs on.
pub fn native_table() -> (&'static [(&'static str, u32)], u32) {
    #[cfg(target_arch = "aarch64")]
    {
        (table::AARCH64, AUDIT_ARCH_AARCH64)
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        (table::X86_64, AUDIT_ARCH_X86_64)
    }
}

/// Docker's default profile for the given syscall table.
pub fn docker_default(table: &[(&str, u32)], audit_arch: u32) -> Profile {
    let nr = |name: &str| table.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr);
    let mut rules = BTreeMap::new();
    for name in ALLOWED {
        if let Some(n) = nr(name) {
            rules.insert(n, Rule::Allow);
        }
    }
    if let Some(n) = nr("clone") {
        rules.insert(
            n,
            Rule::AllowIfMaskClear {
                arg: 0,
                mask: CLONE_NAMESPACE_FLAGS,
            },
        );
    }
    if let Some(n) = nr("clone3") {
        rules.insert(n, Rule::Errno(ENOSYS));
    }
    if let Some(n) = nr("personality") {
        rules.insert(
            n,
            Rule::AllowIfOneOf {
                arg: 0,
                values: PERSONALITIES.to_vec(),
            },
        );
    }
    Profile {
        audit_arch,
        highest_known: table.iter().map(|(_, n)| *n).max().unwrap_or(0),
        rules,
        default_errno: EPERM,
        unknown_errno: ENOSYS,
        deny_x32: audit_arch == AUDIT_ARCH_X86_64,
    }
}

/// Docker's default profile for this machine's architecture.
pub fn default_profile() -> Profile {
    let (table, arch) = native_table();
    docker_default(table, arch)
}

/// A contiguous range of syscall numbers sharing one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    start: u32,
    rule: Rule,
}

fn segments(p: &Profile) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut push = |start: u32, rule: Rule| {
        let mergeable = matches!(rule, Rule::Allow | Rule::Errno(_));
        if let Some(last) = out.last()
            && mergeable
            && last.rule == rule
        {
            return;
        }
        out.push(Segment { start, rule });
    };
    let mut next = 0u32;
    for (&nr, rule) in p.rules.range(..=p.highest_known) {
        if nr > next {
            push(next, Rule::Errno(p.default_errno));
        }
        push(nr, rule.clone());
        next = nr + 1;
    }
    if next <= p.highest_known {
        push(next, Rule::Errno(p.default_errno));
    }
    push(p.highest_known + 1, Rule::Errno(p.unknown_errno));
    out
}

fn leaf(rule: &Rule, default_errno: u16) -> Vec<Insn> {
    let deny = RET_ERRNO | u32::from(default_errno);
    match rule {
        Rule::Allow => vec![stmt(RET_K, RET_ALLOW)],
        Rule::Errno(e) => vec![stmt(RET_K, RET_ERRNO | u32::from(*e))],
        Rule::AllowIfMaskClear { arg, mask } => vec![
            stmt(LD_W_ABS, OFF_ARGS + 8 * u32::from(*arg)),
            jump(JMP_JSET_K, *mask, 0, 1),
            stmt(RET_K, deny),
            stmt(RET_K, RET_ALLOW),
        ],
        Rule::AllowIfOneOf { arg, values } => {
            let mut v = vec![
                stmt(LD_W_ABS, OFF_ARGS + 8 * u32::from(*arg) + 4),
                jump(JMP_JEQ_K, 0, 1, 0),
                stmt(RET_K, deny),
                stmt(LD_W_ABS, OFF_ARGS + 8 * u32::from(*arg)),
            ];
            for value in values {
                v.push(jump(JMP_JEQ_K, *value, 0, 1));
                v.push(stmt(RET_K, RET_ALLOW));
            }
            v.push(stmt(RET_K, deny));
            v
        }
    }
}

fn tree(segs: &[Segment], default_errno: u16) -> Vec<Insn> {
    if segs.len() == 1 {
        return leaf(&segs[0].rule, default_errno);
    }
    let mid = segs.len() / 2;
    let left = tree(&segs[..mid], default_errno);
    let right = tree(&segs[mid..], default_errno);
    let mut v = Vec::with_capacity(left.len() + right.len() + 2);
    // A >= start(mid): fall through to the `ja` that skips the left subtree; else skip the `ja`.
    v.push(jump(JMP_JGE_K, segs[mid].start, 0, 1));
    v.push(stmt(JMP_JA, left.len() as u32));
    v.extend(left);
    v.extend(right);
    v
}

/// Compiles a profile into a BPF program for `SECCOMP_SET_MODE_FILTER`.
pub fn compile(p: &Profile) -> Vec<Insn> {
    let deny = RET_ERRNO | u32::from(p.default_errno);
    let mut v = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JMP_JEQ_K, p.audit_arch, 1, 0),
        stmt(RET_K, deny),
        stmt(LD_W_ABS, OFF_NR),
    ];
    if p.deny_x32 {
        v.push(jump(JMP_JGE_K, X32_SYSCALL_BIT, 0, 1));
        v.push(stmt(RET_K, deny));
    }
    v.extend(tree(&segments(p), p.default_errno));
    v
}

/// The input of a filter, for [`simulate`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// Runs a program on `data` the way the kernel would (the subset of BPF that [`compile`]
/// emits); returns the action. For tests and for checking a filter before installing it.
pub fn simulate(prog: &[Insn], data: &SeccompData) -> Result<u32, String> {
    let load = |off: u32| -> Result<u32, String> {
        match off {
            OFF_NR => Ok(data.nr),
            OFF_ARCH => Ok(data.arch),
            o if (OFF_ARGS..OFF_ARGS + 48).contains(&o) && o % 4 == 0 => {
                let i = ((o - OFF_ARGS) / 8) as usize;
                let word = data.args[i];
                Ok(if (o - OFF_ARGS).is_multiple_of(8) {
                    word as u32
                } else {
                    (word >> 32) as u32
                })
            }
            o => Err(format!("load from unsupported offset {o}")),
        }
    };
    let (mut pc, mut a) = (0usize, 0u32);
    for _ in 0..prog.len() + 1 {
        let insn = prog
            .get(pc)
            .ok_or_else(|| format!("fell off the program at {pc}"))?;
        let branch = |cond: bool| pc + 1 + usize::from(if cond { insn.jt } else { insn.jf });
        pc = match insn.code {
            LD_W_ABS => {
                a = load(insn.k)?;
                pc + 1
            }
            JMP_JA => pc + 1 + insn.k as usize,
            JMP_JEQ_K => branch(a == insn.k),
            JMP_JGE_K => branch(a >= insn.k),
            JMP_JSET_K => branch(a & insn.k != 0),
            RET_K => return Ok(insn.k),
            c => return Err(format!("unsupported opcode {c:#x} at {pc}")),
        };
    }
    Err("program did not terminate".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x86() -> (Profile, Vec<Insn>) {
        let p = docker_default(table::X86_64, AUDIT_ARCH_X86_64);
        let prog = compile(&p);
        (p, prog)
    }

    fn nr(name: &str) -> u32 {
        table::X86_64.iter().find(|(n, _)| *n == name).unwrap().1
    }

    fn call(prog: &[Insn], name: &str, args: [u64; 6]) -> u32 {
        let data = SeccompData {
            nr: nr(name),
            arch: AUDIT_ARCH_X86_64,
            args,
        };
        simulate(prog, &data).unwrap()
    }

    const EPERM_RET: u32 = RET_ERRNO | 1;
    const ENOSYS_RET: u32 = RET_ERRNO | 38;

    #[test]
    fn every_allowed_syscall_is_allowed_and_every_other_denied() {
        let (p, prog) = x86();
        for &(name, number) in table::X86_64 {
            let got = simulate(
                &prog,
                &SeccompData {
                    nr: number,
                    arch: AUDIT_ARCH_X86_64,
                    args: [0; 6],
                },
            )
            .unwrap();
            let want = match p.rules.get(&number) {
                Some(Rule::Allow) | Some(Rule::AllowIfMaskClear { .. }) => RET_ALLOW,
                Some(Rule::AllowIfOneOf { .. }) => RET_ALLOW, // arg 0 is an allowed persona
                Some(Rule::Errno(e)) => RET_ERRNO | u32::from(*e),
                None => EPERM_RET,
            };
            assert_eq!(got, want, "{name} ({number})");
        }
    }

    #[test]
    fn dangerous_syscalls_are_denied() {
        let (_, prog) = x86();
        for name in [
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "init_module",
            "finit_module",
            "delete_module",
            "kexec_load",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "reboot",
            "swapon",
            "open_by_handle_at",
            "fsopen",
            "move_mount",
            "open_tree",
            "io_uring_setup",
            "userfaultfd",
            "sethostname",
            "settimeofday",
            "syslog",
        ] {
            assert_eq!(call(&prog, name, [0; 6]), EPERM_RET, "{name}");
        }
    }

    #[test]
    fn clone_without_namespace_flags_only() {
        let (_, prog) = x86();
        let fork_like = 0x0100_0000 | 0x0020_0000 | 17; // CHILD_SETTID|CHILD_CLEARTID|SIGCHLD
        assert_eq!(call(&prog, "clone", [fork_like, 0, 0, 0, 0, 0]), RET_ALLOW);
        for flag in [0x0002_0000u64, 0x1000_0000, 0x2000_0000, 0x4000_0000] {
            assert_eq!(
                call(&prog, "clone", [fork_like | flag, 0, 0, 0, 0, 0]),
                EPERM_RET
            );
        }
        assert_eq!(call(&prog, "clone3", [0; 6]), ENOSYS_RET);
    }

    #[test]
    fn personality_only_harmless_personas() {
        let (_, prog) = x86();
        assert_eq!(
            call(&prog, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            call(&prog, "personality", [0x0008, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        // ADDR_NO_RANDOMIZE
        assert_eq!(
            call(&prog, "personality", [0x0040000, 0, 0, 0, 0, 0]),
            EPERM_RET
        );
        assert_eq!(
            call(&prog, "personality", [1 << 32, 0, 0, 0, 0, 0]),
            EPERM_RET
        );
    }

    #[test]
    fn foreign_arch_x32_and_unknown_numbers() {
        let (p, prog) = x86();
        let d = |nr, arch| SeccompData {
            nr,
            arch,
            args: [0; 6],
        };
        assert_eq!(simulate(&prog, &d(0, 0x4000_0003)).unwrap(), EPERM_RET); // i386
        assert_eq!(
            simulate(&prog, &d(X32_SYSCALL_BIT, AUDIT_ARCH_X86_64)).unwrap(),
            EPERM_RET
        );
        assert_eq!(
            simulate(&prog, &d(p.highest_known + 1, AUDIT_ARCH_X86_64)).unwrap(),
            ENOSYS_RET
        );
        assert_eq!(
            simulate(&prog, &d(100_000, AUDIT_ARCH_X86_64)).unwrap(),
            ENOSYS_RET
        );
    }

    #[test]
    fn program_is_small_and_shallow() {
        let (_, prog) = x86();
        assert!(prog.len() < 400, "{} instructions", prog.len());
        // Kernel limit is 4096 instructions.
        let a = docker_default(table::AARCH64, AUDIT_ARCH_AARCH64);
        let prog = compile(&a);
        let data = SeccompData {
            nr: table::AARCH64
                .iter()
                .find(|(n, _)| *n == "mount")
                .unwrap()
                .1,
            arch: AUDIT_ARCH_AARCH64,
            args: [0; 6],
        };
        assert_eq!(simulate(&prog, &data).unwrap(), EPERM_RET);
    }
}
