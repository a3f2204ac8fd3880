//! Build chains over real builds: `init, step-1, latest`, each step built FROM the previous
//! tag in the embedded registry, pushed there; a failed step stops the chain with the reason;
//! a start while it runs is coalesced; Docker Hub-shaped webhooks advance it or are refused
//! with the reason.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn pipeline(host: &str) -> String {
    let mut s = String::from("on:\n  manual:\n  image: [\"HOST/base/tool:1\"]\nimages:\n");
    for (img, tag) in [
        ("init-img", "init"),
        ("step1-img", "step-1"),
        ("latest-img", "latest"),
    ] {
        s.push_str(&format!(
            "  {img}:\n    dockerfile: Dockerfile.{tag}\n    repositories: [HOST/acme/app]\n    tags: |\n      type=raw,value={tag}\n    flavor: |\n      latest=false\n"
        ));
    }
    s.push_str("jobs:\n");
    for (img, tag) in [
        ("init-img", "init"),
        ("step1-img", "step-1"),
        ("latest-img", "latest"),
    ] {
        s.push_str(&format!(
            "  {tag}:\n    on:\n      manual:\n    steps:\n      - build: {img}\n      - push: {img}\n"
        ));
    }
    s.push_str(
        "  broken:\n    on:\n      manual:\n    steps:\n      - run: echo about to fail; exit 3\n",
    );
    s.push_str("  on-base:\n    on:\n      image: [\"HOST/base/tool:1\"]\n    steps:\n      - run: echo base image changed\n");
    s.replace("HOST", host)
}

async fn chain_state(s: &TestServer, name: &str) -> Value {
    let (st, v) = s.api("GET", &format!("/api/chains/{name}"), None).await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn wait_chain(s: &TestServer, name: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = chain_state(s, name).await;
        if v["status"] == want {
            return v;
        }
        assert!(
            Instant::now() < deadline && !(v["status"] == "failure" && want != "failure"),
            "chain {name} is not {want}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chains_build_each_step_from_the_previous_and_stop_on_failure() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut cfg = config(&data);
    cfg.builder = None; // the real builder
    let s = TestServer::start_with(cfg).await;
    let host = s.url.trim_start_matches("http://").to_string();
    let (repo, _) = repo(
        tmp.path(),
        "app",
        &[
            ("drydock.yml", &pipeline(&host)),
            ("Dockerfile.init", "FROM scratch\nCOPY init.txt /init.txt\n"),
            (
                "Dockerfile.step-1",
                &format!("FROM {host}/acme/app:init\nCOPY step1.txt /step1.txt\n"),
            ),
            (
                "Dockerfile.latest",
                &format!("FROM {host}/acme/app:step-1\nCOPY latest.txt /latest.txt\n"),
            ),
            ("init.txt", "init\n"),
            ("step1.txt", "step 1\n"),
            ("latest.txt", "latest\n"),
        ],
    );
    s.add_project(json!({"name": "app", "repo_url": file_url(&repo)}))
        .await;
    let (st, v) = s
        .api("POST", "/api/chains", Some(json!({"name": "app-chain", "project": "app", "repository": format!("{host}/acme/app"), "steps": ["init", "step-1", "latest"], "delay_seconds": 0})))
        .await;
    assert_eq!(st, 201, "{v}");
    let token = v["webhook_token"].as_str().unwrap().to_string();
    let (st, v) = s.api("POST", "/api/chains/app-chain/start", None).await;
    assert_eq!((st, &v["started"]), (202, &json!(true)), "{v}");
    // A tick while it runs is coalesced.
    let (st, v) = s.api("POST", "/api/chains/app-chain/start", None).await;
    assert_eq!((st, &v["coalesced"]), (202, &json!(true)), "{v}");
    let c = wait_chain(&s, "app-chain", "success").await;
    assert_eq!(c["coalesced"], 1);
    let runs = c["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{c}");
    for r in runs {
        assert_eq!(r["status"], "success", "{c}");
        assert!(
            r["cause"]
                .as_str()
                .unwrap()
                .starts_with("chain app-chain step"),
            "{r}"
        );
    }
    // Each tag is in the embedded registry, and each step's image has the previous one's
    // layers below its own.
    let (_, tags) = s
        .api("GET", "/api/registry/tags?repository=acme/app", None)
        .await;
    let names: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    for t in ["init", "step-1", "latest"] {
        assert!(names.contains(&t), "{tags}");
    }
    let layers = |tag: &str| {
        let url = format!("{}/v2/acme/app/manifests/{tag}", s.url);
        let http = s.http.clone();
        async move {
            let m: Value = http
                .get(url)
                .header("accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
                .send()
                .await
                .unwrap()
                .json_ish()
                .await;
            m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let (l0, l1, l2) = (
        layers("init").await,
        layers("step-1").await,
        layers("latest").await,
    );
    assert_eq!(l1.len(), l0.len() + 1);
    assert_eq!(l1[..l0.len()], l0[..]);
    assert_eq!(l2[..l1.len()], l1[..]);

    // Docker Hub-shaped webhook: refusals with reasons, then an advance.
    let hub = |tag: &str, repo: &str| {
        json!({
        "callback_url": "http://127.0.0.1:9/callback",
        "push_data": {"pushed_at": 1, "pusher": "ann", "tag": tag},
        "repository": {"repo_name": repo, "name": "app", "namespace": "acme", "status": "Active"}
    }).to_string()
    };
    let path = format!("/hooks/chains/app-chain/dockerhub?token={token}");
    let (st, v) = s
        .hook(&path, &[], hub("nightly", "acme/app").as_bytes())
        .await;
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("not in chain app-chain's sequence"),
        "{v}"
    );
    let (st, v) = s
        .hook(&path, &[], hub("init", "other/repo").as_bytes())
        .await;
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("does not match"),
        "{v}"
    );
    let (st, _) = s
        .hook(
            "/hooks/chains/app-chain/dockerhub?token=wrong",
            &[],
            hub("init", "acme/app").as_bytes(),
        )
        .await;
    assert_eq!(st, 401);
    let (st, v) = s.hook(&path, &[], b"{\"push_data\": {}}").await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s
        .hook(&path, &[], hub("step-1", "acme/app").as_bytes())
        .await;
    assert_eq!(st, 202, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("started step 3 (latest)"),
        "{v}"
    );
    let c = wait_chain(&s, "app-chain", "success").await;
    assert_eq!(c["runs"].as_array().unwrap().len(), 4);

    // A failing step stops the chain, visibly.
    let (st, v) = s
        .api("POST", "/api/chains", Some(json!({"name": "bad", "project": "app", "repository": format!("{host}/acme/app"), "steps": ["init", {"tag": "step-1", "job": "broken"}, "latest"]})))
        .await;
    assert_eq!(st, 201, "{v}");
    s.api("POST", "/api/chains/bad/start", None).await;
    let c = wait_chain(&s, "bad", "failure").await;
    let why = c["reason"].as_str().unwrap();
    assert!(
        why.contains("step 2 (step-1) failure") && why.contains("broken"),
        "{c}"
    );
    assert_eq!(c["current_step"], 1);
    assert_eq!(
        c["runs"].as_array().unwrap().len(),
        2,
        "the chain stopped: {c}"
    );

    // A delay between steps: the chain waits, visibly, then goes on.
    let (st, v) = s
        .api(
            "POST",
            "/api/chains",
            Some(json!({"name": "delayed", "project": "app", "repository": format!("{host}/acme/app"),
                "steps": ["init", "step-1"], "delay_seconds": 2})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    s.api("POST", "/api/chains/delayed/start", None).await;
    let w = wait_chain(&s, "delayed", "waiting").await;
    assert_eq!(w["current_step"], 1, "{w}");
    let c2 = wait_chain(&s, "delayed", "success").await;
    let runs = c2["runs"].as_array().unwrap();
    let (r_step2, r_step1) = (
        runs[0]["run"].as_i64().unwrap(),
        runs[1]["run"].as_i64().unwrap(),
    );
    let (_, a) = s.api("GET", &format!("/api/runs/{r_step1}"), None).await;
    let (_, b) = s.api("GET", &format!("/api/runs/{r_step2}"), None).await;
    assert!(
        b["created_at"].as_i64().unwrap() - a["finished_at"].as_i64().unwrap() >= 2000,
        "step 2 was queued {} ms after step 1 ended",
        b["created_at"].as_i64().unwrap() - a["finished_at"].as_i64().unwrap()
    );

    // The pages: chains with their progress, the registry's repositories and tags.
    let page = |path: &str| {
        let req = s.http.get(format!("{}{path}", s.url)).bearer_auth(&s.token);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let chains_html = page("/chains").await;
    assert!(
        chains_html.contains("id=\"chain-app-chain\"")
            && chains_html.contains("class=\"failed\">step-1"),
        "{chains_html}"
    );
    let registry_html = page("/registry").await;
    assert!(registry_html.contains("acme/app"), "{registry_html}");
    let tags_html = page("/registry?repository=acme/app").await;
    assert!(
        tags_html.contains("step-1") && tags_html.contains("sha256:"),
        "{tags_html}"
    );
    // A step's run page lists the image it pushed, with its digest and tags.
    let first_run = c["runs"].as_array().unwrap().last().unwrap()["run"]
        .as_i64()
        .unwrap();
    let run_html = page(&format!("/runs/{first_run}")).await;
    assert!(
        run_html.contains("<h3>Images</h3>")
            && run_html.contains(&format!("{host}/acme/app:init"))
            && run_html.contains("<code>sha256:"),
        "{run_html}"
    );
    let project_html = page("/projects/app").await;
    assert!(
        project_html.contains("chain app-chain step"),
        "{project_html}"
    );
    s.stop().await;
}

trait JsonIsh {
    async fn json_ish(self) -> Value;
}

impl JsonIsh for reqwest::Response {
    async fn json_ish(self) -> Value {
        let t = self.text().await.unwrap();
        serde_json::from_str(&t).unwrap_or(Value::String(t))
    }
}
