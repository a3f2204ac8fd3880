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

/// `drydock registry serve` as a child process, killed on drop.
struct EmbeddedRegistry {
    child: std::process::Child,
    port: u16,
}

impl Drop for EmbeddedRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client against drydock's own registry: its token service, and the referrers API (the
/// registry handles `subject`, so no tag-schema fallback index is written).
#[test]
fn against_the_embedded_registry_with_auth_and_referrers() {
    let h = Home::new();
    let storage = h.path().join("registry");
    let mut add = h
        .drydock_in("home")
        .env("DRYDOCK_REGISTRY_STORAGE", &storage)
        .args(["registry", "user", "add", "ci", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(b"s3cret-pw\n").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = drydock_testkit::free_port();
    let child = h
        .drydock_in("home")
        .env("DRYDOCK_REGISTRY_STORAGE", &storage)
        .args([
            "registry",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reg = EmbeddedRegistry { child, port };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", reg.port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "drydock registry serve did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let host = format!("127.0.0.1:{}", reg.port);
    h.image("app:dev");
    let target = format!("{host}/acme/app:1");
    let err = h.fails(&["push", &target, "--from", "app:dev"]);
    assert!(err.contains("credentials"), "{err}");
    let pushed = json(&run_ok(
        h.drydock_in("home")
            .env("DRYDOCK_REGISTRY_USER", "ci")
            .env("DRYDOCK_REGISTRY_PASSWORD", "s3cret-pw")
            .args(["push", &target, "--from", "app:dev", "--json"]),
    ));
    let subject = drydock_oci::Digest::parse(pushed["digest"].as_str().unwrap()).unwrap();

    // An artifact that refers to the image, pushed with the library.
    use drydock_oci::media_type;
    let store = drydock_content::Store::open(h.path().join("home/content")).unwrap();
    let empty = store.put_bytes(b"{}").unwrap();
    let payload = store.put_bytes(b"a signature").unwrap();
    let subject_size = store.info(&subject).unwrap().unwrap().size;
    let artifact = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": media_type::OCI_EMPTY, "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": payload.to_string(), "size": 11}],
        "subject": {"mediaType": media_type::OCI_MANIFEST, "digest": subject.to_string(), "size": subject_size},
    });
    let art =
        drydock_content::image::put_json(&store, &artifact, media_type::OCI_MANIFEST).unwrap();
    let art_digest = drydock_oci::Digest::try_from(art.digest()).unwrap();
    let mut opts = drydock_registry_client::ClientOptions::default();
    opts.credentials.insert(
        &host,
        drydock_registry_client::Credential::Basic {
            username: "ci".into(),
            password: "s3cret-pw".into(),
        },
    );
    let client = drydock_registry_client::BlockingClient::new(opts).unwrap();
    let repo = drydock_oci::Reference::parse(&format!("{host}/acme/app:1")).unwrap();
    client
        .push(
            &store,
            &art,
            &[repo.repository_ref().with_digest(art_digest.clone())],
            &Default::default(),
        )
        .unwrap();
    let referrers = client
        .referrers(&repo.repository_ref().with_digest(subject.clone()), None)
        .unwrap();
    let digests: Vec<String> = referrers.iter().map(|d| d.digest().to_string()).collect();
    assert_eq!(digests, [art_digest.to_string()]);
    let tags = client.tags(&repo.repository_ref()).unwrap();
    assert!(
        !tags.iter().any(|t| t.starts_with("sha256-")),
        "no fallback tag: {tags:?}"
    );

    // Pulled back with the same credentials, digest for digest.
    let pulled = json(&run_ok(
        h.drydock_in("home2")
            .env("DRYDOCK_REGISTRY_USER", "ci")
            .env("DRYDOCK_REGISTRY_PASSWORD", "s3cret-pw")
            .args(["pull", &target, "--json"]),
    ));
    assert_eq!(pulled["digest"], subject.to_string().as_str());
}
