//! End-to-end sandbox behaviour, as root, in a busybox root file system.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use drydock_sandbox::{
    CancelToken, ExitStatus, HostEntry, Limits, Mount, NetworkMode, Root, RootMode, SandboxError,
    SecretFile, Stdio, run,
};

#[test]
fn runs_a_command_and_reports_its_exit_code_and_output() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let o = run(f.sh("echo out; echo err >&2; exit 3")).unwrap();
    assert_eq!(o.status, ExitStatus::Exited(3));
    assert_eq!(text(&o.stdout), "out\n");
    assert_eq!(text(&o.stderr), "err\n");
    assert!(!o.timed_out);
    // The run directory is gone (into the trash, deleted in the background) when changes are
    // not kept.
    assert_eq!(run_dirs(&f.state), Vec::<String>::new());
}

#[test]
fn environment_user_groups_and_working_directory() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut s = f.sh("id; pwd; echo $HOME $FOO $HOSTNAME");
    s.user = Some("app".into());
    s.cwd = Some("/home/app/src".into());
    s.env = vec![("FOO".into(), "bar".into())];
    s.hostname = "builder".into();
    let o = run(s).unwrap();
    let out = text(&o.stdout);
    assert!(
        out.contains("uid=1000(app) gid=1000(app) groups=10(wheel),29(audio)"),
        "{out}"
    );
    assert!(out.contains("/home/app/src\n"), "{out}");
    assert!(out.contains("/home/app bar builder"), "{out}");

    let mut s = f.sh("id");
    s.user = Some("4242:wheel".into());
    assert!(text(&run(s).unwrap().stdout).contains("uid=4242 gid=10(wheel)"));

    let mut s = f.sh("id");
    s.user = Some("ghost".into());
    let err = run(s).unwrap_err().to_string();
    assert!(err.contains("unable to find user ghost"), "{err}");
}

#[test]
fn hostname_hosts_and_resolv_conf_are_provided_but_not_in_the_layer() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut s = f.sh("hostname; cat /etc/hostname; grep db /etc/hosts; cat /etc/resolv.conf; echo changed > /etc/new");
    s.hostname = "job-1".into();
    s.extra_hosts = vec![HostEntry {
        ip: "10.1.2.3".parse().unwrap(),
        names: vec!["db".into()],
    }];
    s.resolv_conf = Some("nameserver 10.0.0.53\n".into());
    s.keep_changes = true;
    let o = run(s).unwrap();
    let out = text(&o.stdout);
    assert_eq!(out, "job-1\njob-1\n10.1.2.3\tdb\nnameserver 10.0.0.53\n");
    let changes = o.changes.unwrap();
    let (paths, _) = scan(changes.upper(), b"");
    assert_eq!(
        paths,
        ["etc", "etc/new"],
        "only the command's change is in the upper dir"
    );
}

#[test]
fn cannot_see_host_processes() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let o =
        run(f.sh("ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$"))
            .unwrap();
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    let count: usize = lines[0].parse().unwrap();
    assert!(count <= 4, "sandbox sees {count} processes:\n{out}");
    assert!(
        lines[1].contains("__drydock-sandbox-init"),
        "pid 1 is the sandbox init: {out}"
    );
    assert_eq!(lines[2], "2", "the command is pid 2");
    // And the host's pid 1 is not visible by any name.
    let host_init = fs::read_to_string("/proc/1/comm").unwrap();
    assert!(!out.contains(host_init.trim()) || host_init.trim() == "drydock-sandbox");
}

#[test]
fn cannot_write_lower_layers() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let top = f.tmp.path().join("top");
    fs::create_dir_all(top.join("etc")).unwrap();
    fs::write(top.join("etc/motd"), "from the top layer\n").unwrap();
    let before_passwd = fs::read(f.root.join("etc/passwd")).unwrap();
    let mut s = f.spec(
        Root::Layers(vec![f.root.clone(), top.clone()]),
        ["/bin/sh", "-c", "cat /etc/motd; echo hacked > /etc/passwd; echo hacked > /etc/motd; rm /bin/ls; cat /etc/passwd"],
    );
    s.keep_changes = true;
    let o = run(s).unwrap();
    assert_eq!(text(&o.stdout), "from the top layer\nhacked\n");
    assert_eq!(fs::read(f.root.join("etc/passwd")).unwrap(), before_passwd);
    assert_eq!(
        fs::read_to_string(top.join("etc/motd")).unwrap(),
        "from the top layer\n"
    );
    assert!(fs::symlink_metadata(f.root.join("bin/ls")).is_ok());
    let c = o.changes.unwrap();
    assert_eq!(
        fs::read_to_string(c.upper().join("etc/passwd")).unwrap(),
        "hacked\n"
    );
    // The deletion is an overlayfs whiteout (0/0 character device).
    let wh = fs::symlink_metadata(c.upper().join("bin/ls")).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
}

#[test]
fn read_only_binds_stay_read_only_and_rw_binds_write_through() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let ro = f.tmp.path().join("ro");
    let rw = f.tmp.path().join("rw");
    fs::create_dir_all(&ro).unwrap();
    fs::create_dir_all(&rw).unwrap();
    fs::write(ro.join("data"), "keep").unwrap();
    let mut s = f.sh(
        "echo x > /ro/data || echo write-denied; touch /ro/new || echo create-denied; \
         mount -o remount,rw /ro || echo remount-denied; echo out > /rw/result; cat /ro/data",
    );
    s.mounts = vec![
        Mount::Bind {
            source: ro.clone(),
            target: "/ro".into(),
            readonly: true,
        },
        Mount::Bind {
            source: rw.clone(),
            target: "/rw".into(),
            readonly: false,
        },
    ];
    let o = run(s).unwrap();
    let out = text(&o.stdout);
    assert!(
        out.contains("write-denied")
            && out.contains("create-denied")
            && out.contains("remount-denied"),
        "{out}"
    );
    assert!(out.ends_with("keep"), "{out}");
    assert_eq!(fs::read_to_string(ro.join("data")).unwrap(), "keep");
    assert!(!ro.join("new").exists());
    assert_eq!(fs::read_to_string(rw.join("result")).unwrap(), "out\n");
}

#[test]
fn symlinks_in_the_image_cannot_redirect_mounts_to_the_host() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    // A host directory the image's symlinks point at, absolutely and through `..`.
    let host = f.tmp.path().join("host-target");
    fs::create_dir_all(&host).unwrap();
    let root = f.root.clone();
    fs::rename(root.join("etc"), root.join("real-etc")).unwrap();
    std::os::unix::fs::symlink(&host, root.join("etc")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../../../../../..{}", host.display()),
        root.join("workspace"),
    )
    .unwrap();
    let src = f.tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("file"), "bound").unwrap();
    let mut s = f.sh("cat /workspace/file; ls -d /etc/hosts; echo done");
    s.mounts = vec![Mount::Bind {
        source: src,
        target: "/workspace".into(),
        readonly: true,
    }];
    s.user = Some("0".into());
    let o = run(s).unwrap();
    assert!(text(&o.stdout).contains("bound"), "{}", text(&o.stdout));
    assert_eq!(
        fs::read_dir(&host).unwrap().count(),
        0,
        "nothing was created on the host through the image's symlinks"
    );
}

#[test]
fn symlinks_in_a_bind_source_resolve_inside_the_sandbox() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let secret = f.tmp.path().join("host-secret");
    fs::write(&secret, "HOST-ONLY-SECRET").unwrap();
    let src = f.tmp.path().join("ctx");
    fs::create_dir_all(&src).unwrap();
    std::os::unix::fs::symlink(&secret, src.join("abs")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../../../../..{}", secret.display()),
        src.join("rel"),
    )
    .unwrap();
    let mut s = f.sh("cat /ctx/abs /ctx/rel 2>&1; echo end");
    s.mounts = vec![Mount::Bind {
        source: src,
        target: "/ctx".into(),
        readonly: true,
    }];
    let o = run(s).unwrap();
    let out = text(&o.stdout);
    assert!(!out.contains("HOST-ONLY-SECRET"), "{out}");
    assert!(out.contains("No such file"), "{out}");
}

#[test]
fn cannot_mount_unshare_or_load_modules() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    fs::write(f.root.join("tmp/evil.ko"), vec![0u8; 4096]).unwrap();
    let o = run(f.sh(
        "mkdir -p /mnt; mount -t tmpfs none /mnt 2>&1; unshare -m true 2>&1; \
         insmod /tmp/evil.ko 2>&1; echo end",
    ))
    .unwrap();
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    // busybox mount words EPERM as "permission denied (are you root?)".
    assert!(
        lines[0].contains("permission denied") || lines[0].contains("not permitted"),
        "{out}"
    );
    assert!(
        lines[1].contains("unshare") && lines[1].contains("Operation not permitted"),
        "{out}"
    );
    assert!(
        lines[2].contains("insmod") && lines[2].contains("Operation not permitted"),
        "{out}"
    );
}

#[test]
fn setuid_binaries_do_not_regain_capabilities_under_no_new_privs() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let probe = f.root.join("usr/bin/probe");
    rustix::fs::chown(
        &probe,
        Some(rustix::fs::Uid::from_raw(0)),
        Some(rustix::fs::Gid::from_raw(0)),
    )
    .unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o4755)).unwrap();
    let run_probe = |nnp: bool| {
        let mut s = f.spec(Root::Rootfs(f.root.clone()), ["/usr/bin/probe", "probe"]);
        s.user = Some("app".into());
        s.isolation.no_new_privileges = nnp;
        let o = run(s).unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let with = run_probe(true);
    assert!(with.contains("Uid: 1000 1000 1000 1000"), "{with}");
    assert!(with.contains("CapEff: 0000000000000000"), "{with}");
    assert!(with.contains("CapPrm: 0000000000000000"), "{with}");
    assert!(
        with.contains("NoNewPrivs: 1") && with.contains("Seccomp: 2"),
        "{with}"
    );
    // The control: without no_new_privs the same exec does gain root (so the test can fail).
    let without = run_probe(false);
    assert!(without.contains("Uid: 1000 0 0 0"), "{without}");
    assert!(!without.contains("CapEff: 0000000000000000"), "{without}");
    // Even then only Docker's default set: no CAP_SYS_ADMIN (bit 21).
    let eff = without.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    let bits = u64::from_str_radix(eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(bits & (1 << 21), 0);
    assert_eq!(bits, drydock_sandbox::caps::effective_set(None).unwrap());
}

#[test]
fn secrets_are_readable_but_never_reach_the_upper_dir() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let secret = b"s3cr3t-value-7d1f";
    let mut s =
        f.sh("cat /run/secrets/token; cat /etc/app/key.pem; ls -l /run/secrets; echo built > /out");
    s.mounts = vec![
        Mount::Tmpfs {
            target: "/run/secrets".into(),
            size_bytes: Some(1 << 20),
            mode: 0o755,
            files: vec![SecretFile {
                mode: 0o444,
                ..SecretFile::new("token", &secret[..])
            }],
        },
        Mount::Secret {
            target: "/etc/app/key.pem".into(),
            file: SecretFile::new("", "KEYDATA"),
        },
    ];
    s.keep_changes = true;
    let o = run(s).unwrap();
    let out = text(&o.stdout);
    assert!(out.starts_with("s3cr3t-value-7d1fKEYDATA"), "{out}");
    let c = o.changes.unwrap();
    let (paths, found) = scan(c.upper(), secret);
    assert!(!found);
    assert!(!scan(c.upper(), b"KEYDATA").1);
    assert_eq!(paths, ["out"], "only the command's output file is a change");
    assert!(
        !format!(
            "{:?}",
            Mount::Secret {
                target: "/x".into(),
                file: SecretFile::new("", "KEYDATA")
            }
        )
        .contains("KEYDATA")
    );
}

fn assert_nothing_left(marker: &str, run_id: &str, state: &Path) {
    assert_eq!(
        processes_with_env(marker),
        Vec::<i32>::new(),
        "processes left behind"
    );
    assert_eq!(
        mounts_under(state),
        Vec::<String>::new(),
        "mounts left behind"
    );
    assert_eq!(
        cgroups_of(run_id),
        Vec::<PathBuf>::new(),
        "cgroups left behind"
    );
    assert_eq!(
        run_dirs(state),
        Vec::<String>::new(),
        "run directories left behind"
    );
}

#[test]
fn a_fork_bomb_is_stopped_by_the_pids_limit_and_the_timeout() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let marker = format!("DRYDOCK_TEST_MARKER=bomb-{}", std::process::id());
    let mut s = f.sh("b() { b | b & }; b; while :; do :; done");
    s.env = vec![(
        "DRYDOCK_TEST_MARKER".into(),
        marker.split_once('=').unwrap().1.into(),
    )];
    s.limits = Limits {
        pids: Some(64),
        memory_bytes: Some(256 << 20),
        cpu_millis: Some(500),
    };
    s.timeout = Some(Duration::from_secs(3));
    let o = run(s).unwrap();
    // The timeout fires, or a limit stops the main shell first (the OOM killer, or a failed fork
    // under the pids limit); either way the whole tree must be gone.
    assert!(o.timed_out || !o.status.success(), "{:?}", o.status);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    assert_nothing_left(&marker, &o.run_id, &f.state);
}

#[test]
fn sleep_forever_is_killed_at_the_timeout_with_its_children() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let marker = format!("DRYDOCK_TEST_MARKER=sleep-{}", std::process::id());
    let mut s = f.sh("sleep 1000 & sleep 1000 & (trap '' TERM; sleep 1000) & wait");
    s.env = vec![(
        "DRYDOCK_TEST_MARKER".into(),
        marker.split_once('=').unwrap().1.into(),
    )];
    s.timeout = Some(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let o = run(s).unwrap();
    assert!(o.timed_out);
    assert_eq!(o.status, ExitStatus::Signaled(9));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_nothing_left(&marker, &o.run_id, &f.state);
}

#[test]
fn memory_limit_kills_an_allocation_beyond_it() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut s = f.sh("dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null; echo dd=$?");
    s.limits.memory_bytes = Some(32 << 20);
    let o = run(s).unwrap();
    assert_eq!(
        text(&o.stdout),
        "dd=137\n",
        "dd was killed (SIGKILL from the OOM killer)"
    );
    let mut s = f.sh("dd if=/dev/zero of=/dev/null bs=1M count=1 2>/dev/null; echo survived");
    s.limits.memory_bytes = Some(32 << 20);
    assert_eq!(text(&run(s).unwrap().stdout), "survived\n");
}

#[test]
fn network_none_has_only_a_loopback_that_is_up() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let o = run(f.sh("ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags"))
        .unwrap();
    let out = text(&o.stdout);
    assert!(out.starts_with("lo\n"), "{out}");
    assert!(out.contains("0x9"), "IFF_UP|IFF_LOOPBACK: {out}");
    let mut s = f.sh("ls /sys/class/net | wc -l");
    s.network = NetworkMode::Host;
    let host_ifaces = fs::read_dir("/sys/class/net").unwrap().count();
    assert_eq!(
        text(&run(s).unwrap().stdout).trim(),
        host_ifaces.to_string()
    );
}

#[test]
fn foreign_architecture_without_handler_names_the_missing_handler() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[6] = 1;
    elf[16] = 2;
    elf[18..20].copy_from_slice(&243u16.to_le_bytes()); // riscv
    fs::write(f.root.join("bin/foreign"), &elf).unwrap();
    fs::set_permissions(
        f.root.join("bin/foreign"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let has_riscv_handler = fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().contains("riscv64"))
        })
        .unwrap_or(false);
    let err = run(f.spec(Root::Rootfs(f.root.clone()), ["foreign"])).unwrap_err();
    if has_riscv_handler {
        return;
    }
    match err {
        SandboxError::ForeignArchitecture(m) => {
            assert!(
                m.contains("riscv64") && m.contains("qemu-user-static") && m.contains("foreign"),
                "{m}"
            )
        }
        e => panic!("expected a foreign-architecture error, got {e}"),
    }
}

#[test]
fn missing_command_is_a_setup_error() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let err = run(f.spec(Root::Rootfs(f.root.clone()), ["no-such-command"])).unwrap_err();
    assert!(
        matches!(&err, SandboxError::Setup { errno: Some(2), .. }),
        "{err}"
    );
    assert!(err.to_string().contains("no-such-command"), "{err}");
}

#[test]
fn many_lower_layers_use_the_new_mount_api() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    // Long paths: 120 layers of ~120 bytes each cannot fit in one page of mount options.
    let long = "l".repeat(100);
    let mut layers = vec![f.root.clone()];
    for i in 0..120 {
        let d = f.tmp.path().join(format!("{long}-{i:03}"));
        fs::create_dir_all(d.join("layers")).unwrap();
        fs::write(d.join("layers").join(format!("{i:03}")), format!("{i}\n")).unwrap();
        fs::write(d.join("layers/top"), format!("{i}\n")).unwrap();
        layers.push(d);
    }
    assert!(
        drydock_sandbox::mounts::overlay_options(&layers, Path::new("/u"), Path::new("/w"), false)
            .is_none()
    );
    let o = run(f.spec(
        Root::Layers(layers),
        [
            "/bin/sh",
            "-c",
            "ls /layers | wc -l; cat /layers/top /layers/000",
        ],
    ))
    .unwrap();
    assert_eq!(text(&o.stdout), "121\n119\n0\n", "{}", text(&o.stderr));
}

#[test]
fn copy_mode_gives_the_same_layer_as_overlay() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let script = "mkdir -p /app/sub; echo a > /app/sub/a; echo changed > /etc/passwd; rm /bin/ls; \
                  rm -rf /home/app; echo new > /home/f; chmod 700 /tmp; ln -s /app/sub/a /app/link";
    let layer = |mode| {
        let mut s = f.sh(script);
        s.root_mode = mode;
        s.keep_changes = true;
        let o = run(s).unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        let c = o.changes.unwrap();
        assert_eq!(c.is_overlay(), mode == RootMode::Overlay);
        let mut tar = Vec::new();
        let opts = drydock_layer::DiffOptions {
            tar: drydock_layer::TarOptions::with_epoch(0),
            ..Default::default()
        };
        c.write_layer(&mut tar, &opts).unwrap();
        tar
    };
    let ov = layer(RootMode::Overlay);
    let cp = layer(RootMode::Copy);
    let names = |tar: &[u8]| {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    // Parents of changes are written too (as Docker does).
    let expected = [
        "app/",
        "app/link",
        "app/sub/",
        "app/sub/a",
        "bin/",
        "bin/.wh.ls",
        "etc/",
        "etc/passwd",
        "home/",
        "home/.wh.app",
        "home/f",
        "tmp/",
    ];
    assert_eq!(names(&cp), expected);
    assert_eq!(names(&ov), expected);
    assert!(ov == cp, "overlay and copy mode give byte-identical layers");
}

#[test]
fn a_layer_from_one_run_is_a_snapshot_for_the_next() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    // Layer 1: the busybox root as a tar blob; layer 2: the changes of a run on top of it.
    let base_tar = {
        let mut v = Vec::new();
        drydock_layer::write_tree(&f.root, &mut v, &drydock_layer::TarOptions::with_epoch(0))
            .unwrap();
        v
    };
    let mut s = f.sh("rm /etc/group; mkdir /data; echo layered > /data/x");
    s.keep_changes = true;
    let o = run(s).unwrap();
    let mut top_tar = Vec::new();
    o.changes
        .unwrap()
        .write_layer(&mut top_tar, &drydock_layer::DiffOptions::default())
        .unwrap();
    let blobs = [base_tar, top_tar];
    let digests: Vec<drydock_oci::Digest> = blobs
        .iter()
        .map(|b| drydock_oci::Digest::sha256(b))
        .collect();
    let cache = drydock_sandbox::SnapshotCache::new(f.tmp.path().join("snapshots"));
    let blobs2 = blobs.clone();
    let ds = digests.clone();
    let source = drydock_sandbox::BlobLayerSource::new(
        move |d: &drydock_oci::Digest| -> std::io::Result<Box<dyn std::io::Read>> {
            let i = ds.iter().position(|x| x == d).unwrap();
            Ok(Box::new(std::io::Cursor::new(blobs2[i].clone())))
        },
        false,
    );
    let lowers = cache.ensure_all(&digests, &source).unwrap();
    let o = run(f.spec(
        Root::Layers(lowers),
        ["/bin/sh", "-c", "cat /data/x; ls /etc"],
    ))
    .unwrap();
    // /etc/group is gone; hostname, hosts and resolv.conf are the sandbox's bind mounts.
    assert_eq!(
        text(&o.stdout),
        "layered\nhostname\nhosts\npasswd\nresolv.conf\n",
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn cancel_stops_a_run_and_streams_deliver_output_live() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let token = CancelToken::new().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut s = f.sh("echo ready; sleep 1000");
    s.cancel = Some(token.clone());
    s.stdout = Stdio::Stream(Box::new(move |chunk| {
        let _ = tx.send(chunk.to_vec());
    }));
    let t = std::thread::spawn(move || run(s).unwrap());
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(first, b"ready\n");
    token.cancel();
    let o = t.join().unwrap();
    assert!(o.cancelled && !o.timed_out);
    assert_eq!(o.status, ExitStatus::Signaled(9));
}

#[test]
fn concurrent_runs_share_a_lower_dir() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let mut s = f.sh(&format!("echo {i} > /mine; cat /mine"));
            s.keep_changes = false;
            std::thread::spawn(move || run(s).unwrap())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(text(&h.join().unwrap().stdout), format!("{i}\n"));
    }
}

#[test]
fn rlimits_stdin_and_output_descriptors() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let input = f.tmp.path().join("input");
    fs::write(&input, "from stdin\n").unwrap();
    let output = f.tmp.path().join("output");
    let mut s = f.sh("ulimit -n; ulimit -Hn; cat");
    s.rlimits = vec![drydock_sandbox::Rlimit {
        resource: drydock_sandbox::RlimitResource::Nofile,
        soft: 123,
        hard: 456,
    }];
    s.stdin = drydock_sandbox::Stdin::Fd(fs::File::open(&input).unwrap().into());
    s.stdout = Stdio::Fd(fs::File::create(&output).unwrap().into());
    let o = run(s).unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());
    assert_eq!(
        fs::read_to_string(&output).unwrap(),
        "123\n456\nfrom stdin\n"
    );
}

#[test]
fn the_sandbox_init_is_not_inspectable_from_inside() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let o = run(f.sh(
        "ls -l /proc/1/exe 2>&1 | grep -c drydock-sandbox-init; cat /proc/1/environ 2>&1 >/dev/null | grep -c denied",
    ))
    .unwrap();
    // /proc/1/exe cannot be resolved and /proc/1/environ cannot be read.
    assert_eq!(text(&o.stdout), "0\n1\n", "{}", text(&o.stderr));
}
