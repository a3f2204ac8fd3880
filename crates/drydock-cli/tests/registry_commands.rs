//! End-to-end tests of the registry commands (issue 6): push, pull, copy docker://, inspect
//! docker://, tags list, login/logout, against Debian's docker-registry. Each test has its own
//! `DRYDOCK_HOME` and `DOCKER_CONFIG`.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use drydock_testkit::{ReferenceRegistry, require_tool, run, run_ok};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn drydock_in(&self, home: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drydock"));
        c.env("DRYDOCK_HOME", self.path().join(home))
            .env("DOCKER_CONFIG", self.path().join("docker"))
            .env_remove("DRYDOCK_REGISTRY_USER")
            .env_remove("DRYDOCK_REGISTRY_PASSWORD")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR");
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        run_ok(self.drydock_in("home").args(args))
    }

    fn fails(&self, args: &[&str]) -> String {
        let out: Output = run(self.drydock_in("home").args(args));
        assert!(!out.status.success(), "drydock {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A one-layer image from a tar made here (no network, no kit).
    fn image(&self, name: &str) {
        let rootfs = self.path().join("rootfs.tar");
        let src = self.path().join("rootfs");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("hello.txt"), "hello from drydock\n").unwrap();
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&src)
                .arg("-cf")
                .arg(&rootfs)
                .arg("hello.txt"),
        );
        self.ok(&["import", rootfs.to_str().unwrap(), "--tag", name]);
    }

    fn login(&self, registry: &str, user: &str, password: &str) -> Output {
        let mut child = self
            .drydock_in("home")
            .args(["login", registry, "-u", user, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn push_pull_copy_inspect_and_tags_list() {
    let Some(reg) = ReferenceRegistry::start("") else {
        return;
    };
    let h = Home::new();
    h.image("app:dev");
    let target = format!("{}/acme/app:1", reg.host());
    let pushed = json(&h.ok(&[
        "push",
        &target,
        "--from",
        "app:dev",
        "--also",
        &format!("{}/acme/app:latest", reg.host()),
        "--json",
    ]));
    let digest = pushed["digest"].as_str().unwrap().to_string();
    assert_eq!(pushed["references"].as_array().unwrap().len(), 2);

    let tags = json(&h.ok(&[
        "tags",
        "list",
        &format!("{}/acme/app", reg.host()),
        "--json",
    ]));
    let mut tags: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["1", "latest"]);

    let raw = h.ok(&["inspect", "--raw", &format!("docker://{target}")]);
    assert_eq!(format!("sha256:{}", sha256_hex(raw.as_bytes())), digest);
    let summary = json(&h.ok(&["inspect", &format!("docker://{target}")]));
    assert_eq!(summary["Digest"], digest.as_str());
    assert_eq!(summary["Layers"].as_array().unwrap().len(), 1);

    // Registry to registry (same registry: mounted), then pulled into another home.
    let copy = format!("{}/other/app:2", reg.host());
    h.ok(&[
        "copy",
        &format!("docker://{target}"),
        &format!("docker://{copy}"),
    ]);
    let pulled = json(&run_ok(
        h.drydock_in("home2").args(["pull", &copy, "--json"]),
    ));
    assert_eq!(pulled["digest"], digest.as_str());
    let images = run_ok(h.drydock_in("home2").args(["images"]));
    assert!(images.contains("other/app"), "{images}");

    // docker:// to an OCI layout goes through the local store.
    let oci = h.path().join("layout");
    h.ok(&[
        "copy",
        &format!("docker://{copy}"),
        &format!("oci:{}:v1", oci.display()),
    ]);
    assert!(oci.join("index.json").is_file());
    // And back from the layout to the registry.
    h.ok(&[
        "copy",
        &format!("oci:{}:v1", oci.display()),
        &format!("docker://{}/from/layout:3", reg.host()),
    ]);

    let err = h.fails(&["pull", &format!("{}/acme/missing:1", reg.host())]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn login_validates_saves_and_logout_removes() {
    let Some(htpasswd) = require_tool("htpasswd", "apache2-utils") else {
        return;
    };
    let h = Home::new();
    let file = h.path().join("htpasswd");
    let out = run_ok(Command::new(htpasswd).args(["-Bbn", "ci", "pa55word"]));
    std::fs::write(&file, out).unwrap();
    let Some(reg) = ReferenceRegistry::start(&format!(
        "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
        file.display()
    )) else {
        return;
    };
    h.image("app:dev");
    let target = format!("{}/private/app:1", reg.host());
    let err = h.fails(&["push", &target, "--from", "app:dev"]);
    assert!(err.contains("drydock login"), "{err}");

    let bad = h.login(&reg.host(), "ci", "nope");
    assert!(!bad.status.success());
    assert!(
        !String::from_utf8_lossy(&bad.stderr).contains("nope"),
        "the password never appears"
    );
    assert!(
        !h.path().join("docker/config.json").exists(),
        "nothing saved on failure"
    );

    let good = h.login(&reg.host(), "ci", "pa55word");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let config = json(&std::fs::read_to_string(h.path().join("docker/config.json")).unwrap());
    assert!(config["auths"][reg.host()]["auth"].is_string(), "{config}");
    h.ok(&["push", &target, "--from", "app:dev"]);

    // CI: environment variables instead of a login.
    h.ok(&["logout", &reg.host()]);
    h.fails(&["tags", "list", &format!("{}/private/app", reg.host())]);
    let listed = run_ok(
        h.drydock_in("home")
            .env("DRYDOCK_REGISTRY_USER", "ci")
            .env("DRYDOCK_REGISTRY_PASSWORD", "pa55word")
            .args(["tags", "list", &format!("{}/private/app", reg.host())]),
    );
    assert_eq!(listed.trim(), "1");
}

fn sha256_hex(data: &[u8]) -> String {
    drydock_oci::Digest::sha256(data).hex().to_string()
}
