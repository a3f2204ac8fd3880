//! Real clients against the registry: skopeo, umoci, buildah, oras (PyPI's oras client) and
//! Debian's Docker engine. Each test checks for its tool: with `CI` set a missing tool fails
//! loudly, locally the test is skipped with a message.

#![allow(clippy::print_stderr)]

mod common;

use std::process::{Command, Stdio};

use common::*;
use drydock_registry_server::{Action, Grant};

fn skopeo() -> Command {
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy");
    c
}

#[test]
fn skopeo_copy_inspect_list_tags_delete_and_umoci_unpack() {
    if !have_tool("skopeo") || !have_tool("umoci") {
        return;
    }
    let s = start_thread(|_| {});
    let work = tempfile::tempdir().unwrap();
    let digest = oci_layout(work.path(), "v1", "hello from skopeo\n");
    let layout = work.path().join("layout");
    let dest = format!("docker://{}/interop/app:v1", s.host);
    run_ok(
        skopeo()
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(&dest),
    );
    run_ok(
        skopeo()
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{}/interop/app:v2", s.host)),
    );
    // skopeo compresses the layer for a registry, so the manifest differs from the layout's
    let _ = digest;
    let raw = run_ok(
        skopeo()
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(&dest),
    );
    let info = run_ok(skopeo().args(["inspect", "--tls-verify=false"]).arg(&dest));
    let pushed = drydock_oci::Digest::sha256(raw.as_bytes());
    assert!(info.contains(&pushed.to_string()), "{info}");
    let tags = run_ok(
        skopeo()
            .args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{}/interop/app", s.host)),
    );
    let v: serde_json::Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(v["Tags"], serde_json::json!(["v1", "v2"]));
    // copy back out and unpack with umoci
    let out = work.path().join("out");
    run_ok(
        skopeo()
            .args(["copy", "--src-tls-verify=false"])
            .arg(&dest)
            .arg(format!("oci:{}:v1", out.display())),
    );
    let bundle = work.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:v1", out.display()))
            .arg(&bundle),
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "hello from skopeo\n"
    );
    // delete (by digest) removes the manifest and its tags
    run_ok(skopeo().args(["delete", "--tls-verify=false"]).arg(&dest));
    let out = run(skopeo()
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(&dest));
    assert!(!out.status.success());
}

#[test]
fn skopeo_with_users_and_scoped_robot_tokens() {
    if !have_tool("skopeo") {
        return;
    }
    let s = start_thread(|c| c.anonymous_read = false);
    s.registry
        .auth()
        .add_user("alice", "wonderland", vec![Grant::everything()])
        .unwrap();
    let (_, robot) = s
        .registry
        .auth()
        .create_token(
            "ci",
            vec![Grant {
                repositories: "acme/app".into(),
                actions: vec![Action::Pull, Action::Push],
            }],
            None,
        )
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    oci_layout(work.path(), "v1", "scoped\n");
    let src = format!("oci:{}:v1", work.path().join("layout").display());
    // no credentials: refused
    let out = run(skopeo()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(&src)
        .arg(format!("docker://{}/acme/app:v1", s.host)));
    assert!(!out.status.success());
    // the robot token as a password: acme/app yes, acme/other no (push and pull)
    let creds = format!("ci:{robot}");
    run_ok(
        skopeo()
            .args(["copy", "--dest-tls-verify=false", "--dest-creds", &creds])
            .arg(&src)
            .arg(format!("docker://{}/acme/app:v1", s.host)),
    );
    let out = run(skopeo()
        .args(["copy", "--dest-tls-verify=false", "--dest-creds", &creds])
        .arg(&src)
        .arg(format!("docker://{}/acme/other:v1", s.host)));
    assert!(
        !out.status.success(),
        "robot token pushed outside its scope"
    );
    run_ok(
        skopeo()
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "alice:wonderland",
            ])
            .arg(&src)
            .arg(format!("docker://{}/acme/other:v1", s.host)),
    );
    let out = run(skopeo()
        .args(["inspect", "--tls-verify=false", "--creds", &creds])
        .arg(format!("docker://{}/acme/other:v1", s.host)));
    assert!(!out.status.success(), "robot token read outside its scope");
    run_ok(
        skopeo()
            .args(["inspect", "--tls-verify=false", "--creds", &creds])
            .arg(format!("docker://{}/acme/app:v1", s.host)),
    );
    run_ok(
        skopeo()
            .args([
                "inspect",
                "--tls-verify=false",
                "--creds",
                "alice:wonderland",
            ])
            .arg(format!("docker://{}/acme/other:v1", s.host)),
    );
}

#[test]
fn buildah_push() {
    if !have_tool("buildah") || !have_tool("skopeo") {
        return;
    }
    let s = start_thread(|_| {});
    // buildah names a pulled layout after its path, which must be lowercase
    let work = tempfile::Builder::new()
        .prefix("drydock-buildah-")
        .rand_bytes(0)
        .suffix(&std::process::id().to_string())
        .tempdir()
        .unwrap();
    oci_layout(work.path(), "v1", "hello from buildah\n");
    let storage = work.path().join("storage");
    let runroot = work.path().join("run");
    let buildah = || {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(&storage)
            .arg("--runroot")
            .arg(&runroot)
            .args(["--storage-driver", "vfs"]);
        c
    };
    run_ok(
        buildah()
            .args(["pull", "--quiet"])
            .arg(format!("oci:{}:v1", work.path().join("layout").display())),
    );
    let images = run_ok(buildah().args(["images", "--quiet"]));
    let id = images.lines().next().unwrap().trim().to_string();
    run_ok(
        buildah()
            .args(["push", "--tls-verify=false", &id])
            .arg(format!("docker://{}/buildah/app:v1", s.host)),
    );
    let raw = run_ok(
        skopeo()
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{}/buildah/app:v1", s.host)),
    );
    assert!(raw.contains("\"layers\""), "{raw}");
    let _ = run(buildah()
        .args(["rmi", "--all"])
        .stdout(Stdio::null())
        .stderr(Stdio::null()));
}

const ORAS_SCRIPT: &str = r#"
import json, os, sys
import oras.client, oras.oci
host, workdir = sys.argv[1], sys.argv[2]
os.chdir(workdir)
c = oras.client.OrasClient(hostname=host, insecure=True)
open("artifact.txt", "w").write("an artifact\n")
r = c.push(target=f"{host}/art/thing:v1", files=["artifact.txt:text/plain"], disable_path_validation=True)
assert r.status_code == 201, r.text
# attach: an artifact whose subject is the first one (chunked upload this time)
import requests
m = requests.get(f"http://{host}/v2/art/thing/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
subject = oras.oci.Subject(mediaType=m.headers["Content-Type"], digest=m.headers["Docker-Content-Digest"], size=len(m.content))
open("sig.txt", "w").write("a signature\n")
r = c.push(target=f"{host}/art/thing:sig", files=["sig.txt:application/vnd.example.signature"],
           subject=subject, disable_path_validation=True, do_chunked=True, chunk_size=4)
assert r.status_code == 201, r.text
print(json.dumps({"tags": c.get_tags(f"{host}/art/thing")}))
os.makedirs("pulled", exist_ok=True)
files = c.pull(target=f"{host}/art/thing:v1", outdir="pulled")
print(json.dumps({"pulled": [open(f).read() for f in files]}))
"#;

#[test]
fn oras_push_attach_and_discover() {
    let python = "python3";
    let has_oras = Command::new(python)
        .args(["-c", "import oras.client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_oras {
        assert!(
            std::env::var_os("CI").is_none(),
            "the oras client (pip install oras) is required in CI"
        );
        eprintln!("SKIP: the oras client is not installed (pip install oras)");
        return;
    }
    let s = start_thread(|_| {});
    let work = tempfile::tempdir().unwrap();
    let out = run_ok(
        Command::new(python)
            .args(["-c", ORAS_SCRIPT])
            .arg(&s.host)
            .arg(work.path()),
    );
    assert!(out.contains("\"v1\"") && out.contains("\"sig\""), "{out}");
    assert!(out.contains("an artifact"), "{out}");
    // discover: the referrers API lists the attached signature with its artifact type
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = client();
        let r = c
            .get(format!("{}/v2/art/thing/manifests/v1", s.url))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        let d = r.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_string();
        let v = c
            .get(format!("{}/v2/art/thing/referrers/{d}", s.url))
            .send()
            .await
            .unwrap()
            .json_value()
            .await;
        let list = v["manifests"].as_array().unwrap();
        let sig = c
            .get(format!("{}/v2/art/thing/manifests/sig", s.url))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            list.len(),
            1,
            "referrers of {d}: {v}; the attached manifest: {sig}"
        );
        let v = c
            .get(format!(
                "{}/v2/art/thing/referrers/{d}?{}",
                s.url,
                serde_urlencoded::to_string([(
                    "artifactType",
                    list[0]["artifactType"].as_str().unwrap()
                )])
                .unwrap()
            ))
            .send()
            .await
            .unwrap()
            .json_value()
            .await;
        assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    });
}

/// `docker login`, `docker push`, `docker pull` with Debian's engine, through the token service.
#[test]
fn docker_login_push_pull() {
    let Some(docker) = drydock_testkit::Docker::ensure() else {
        return;
    };
    let s = start_thread(|_| {});
    s.registry
        .auth()
        .add_user("dev", "devpass", vec![Grant::everything()])
        .unwrap();
    let (_, robot) = s
        .registry
        .auth()
        .create_token(
            "deploy",
            vec![Grant {
                repositories: "team/app".into(),
                actions: vec![Action::Pull, Action::Push],
            }],
            None,
        )
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let d = || {
        let mut c = docker.cmd();
        c.arg("--config").arg(&config);
        c
    };
    // an image made from bytes: import a rootfs tarball
    let root = work.path().join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), "hello from docker\n").unwrap();
    let tarball = work.path().join("rootfs.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
    );
    let local = format!("{}/team/app:v1", s.host);
    run_ok(d().arg("import").arg(&tarball).arg(&local));
    // push without login fails, then works after login with the robot token
    let out = run(d().args(["push", &local]));
    assert!(!out.status.success(), "anonymous push accepted");
    let mut login = d();
    login
        .args(["login", &s.host, "-u", "deploy", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), robot.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker login: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_ok(d().args(["push", &local]));
    // the robot token may not push elsewhere
    let elsewhere = format!("{}/team/other:v1", s.host);
    run_ok(d().args(["tag", &local, &elsewhere]));
    let out = run(d().args(["push", &elsewhere]));
    assert!(
        !out.status.success(),
        "robot token pushed outside its scope"
    );
    // pull back after removing the local copy
    run_ok(d().args(["rmi", &local, &elsewhere]));
    run_ok(d().args(["pull", &local]));
    let name = format!("drydock-registry-test-{}", std::process::id());
    run_ok(d().args(["create", "--name", &name, &local, "/none"]));
    let copied = work.path().join("copied.txt");
    run_ok(d().args(["cp", &format!("{name}:/hello.txt")]).arg(&copied));
    let _ = run(d().args(["rm", &name]));
    assert_eq!(
        std::fs::read_to_string(&copied).unwrap(),
        "hello from docker\n"
    );
    // a user with a password logs in too
    let mut login = d();
    login
        .args(["login", &s.host, "-u", "dev", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"devpass").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let mut login = d();
    login
        .args(["login", &s.host, "-u", "dev", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"wrong").unwrap();
    assert!(
        !child.wait_with_output().unwrap().status.success(),
        "docker login accepted a wrong password"
    );
    let _ = run(d().args(["rmi", &local]));
}

/// TLS from PEM files (rustls with ring): curl and skopeo over HTTPS.
#[test]
fn tls_from_cert_and_key_files() {
    if !have_tool("openssl") || !have_tool("curl") || !have_tool("skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (cert, key) = (work.path().join("cert.pem"), work.path().join("key.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null()),
    );
    let storage = work.path().join("storage");
    let (tx, rx) = std::sync::mpsc::channel();
    let files = drydock_registry_server::TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let mut cfg = drydock_registry_server::RegistryConfig::new(storage);
            cfg.gc_interval = None;
            let reg = drydock_registry_server::Registry::open(cfg).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let opts = drydock_registry_server::ServeOptions { tls: Some(files) };
            drydock_registry_server::serve(reg, listener, opts, std::future::pending())
                .await
                .unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    let out = run_ok(
        Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(&cert)
            .arg(format!("https://{addr}/v2/")),
    );
    assert_eq!(out, "{}");
    // plain HTTP on the TLS port is refused
    let out = run(Command::new("curl")
        .args(["-s", "-m", "5"])
        .arg(format!("http://{addr}/v2/")));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("{}"));
    oci_layout(work.path(), "v1", "over tls\n");
    let certs = work.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&cert, certs.join("ca.crt")).unwrap();
    run_ok(
        skopeo()
            .arg("copy")
            .arg("--dest-cert-dir")
            .arg(&certs)
            .arg(format!("oci:{}:v1", work.path().join("layout").display()))
            .arg(format!("docker://{addr}/tls/app:v1")),
    );
    let tags = run_ok(
        skopeo()
            .arg("list-tags")
            .arg("--cert-dir")
            .arg(&certs)
            .arg(format!("docker://{addr}/tls/app")),
    );
    assert!(tags.contains("v1"), "{tags}");
}
