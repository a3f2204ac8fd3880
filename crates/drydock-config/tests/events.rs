//! Event matching with GitHub's filter semantics, job filters and secret rules.

use drydock_config::{Event, EventKind, GitInfo, parse};

fn p(text: &str) -> drydock_config::Pipeline {
    parse(text).unwrap_or_else(|d| panic!("{}", drydock_diagnostics::render_all("t.yml", text, &d)))
}

const JOBS: &str = "jobs:\n  t:\n    steps: [ { run: x } ]\n";

fn with_on(on: &str) -> drydock_config::Pipeline {
    p(&format!("on:\n{on}\n{JOBS}"))
}

#[test]
fn default_triggers_run_on_branches_tags_and_prs() {
    let pl = p(JOBS);
    assert!(pl.accepts(&Event::push("refs/heads/anything/here")).is_ok());
    assert!(pl.accepts(&Event::push("refs/tags/v1")).is_ok());
    assert!(
        pl.accepts(&Event::pull_request(3, "main", "feature", false))
            .is_ok()
    );
    let sched = Event {
        kind: EventKind::Schedule { cron: None },
        git_ref: "refs/heads/main".into(),
        changed_paths: None,
    };
    assert!(pl.accepts(&sched).is_err());
    let manual = Event {
        kind: EventKind::Manual,
        git_ref: "refs/heads/main".into(),
        changed_paths: None,
    };
    assert!(pl.accepts(&manual).is_err());
}

#[test]
fn branches_and_ignore_together() {
    let pl = with_on(
        "  push: { branches: [main, \"release/**\"], branches-ignore: [\"**nohub**\"], tags: [\"v*\"] }",
    );
    assert!(pl.accepts(&Event::push("refs/heads/main")).is_ok());
    assert!(pl.accepts(&Event::push("refs/heads/release/1.0")).is_ok());
    let e = pl
        .accepts(&Event::push("refs/heads/release/1.0-nohub"))
        .unwrap_err();
    assert!(e.contains("branches-ignore"), "{e}");
    let e = pl.accepts(&Event::push("refs/heads/feature")).unwrap_err();
    assert!(e.contains("does not match branches"), "{e}");
    assert!(pl.accepts(&Event::push("refs/tags/v1.0")).is_ok());
    assert!(pl.accepts(&Event::push("refs/tags/1.0")).is_err());
    assert!(
        pl.accepts(&Event::pull_request(1, "main", "x", false))
            .is_err(),
        "no pull_request in on"
    );
}

#[test]
fn only_tag_filters_skip_branches_and_vice_versa() {
    let tags_only = with_on("  push: { tags: [\"v*\"] }");
    assert!(tags_only.accepts(&Event::push("refs/heads/main")).is_err());
    assert!(tags_only.accepts(&Event::push("refs/tags/v2")).is_ok());
    let branches_only = with_on("  push: { branches: [main] }");
    assert!(branches_only.accepts(&Event::push("refs/tags/v2")).is_err());
    let ignore_only = with_on("  push: { tags-ignore: [\"*-rc*\"] }");
    assert!(
        ignore_only
            .accepts(&Event::push("refs/tags/v1.0-rc1"))
            .is_err()
    );
    assert!(ignore_only.accepts(&Event::push("refs/tags/v1.0")).is_ok());
    assert!(
        ignore_only
            .accepts(&Event::push("refs/heads/main"))
            .is_err()
    );
}

#[test]
fn negation_order_decides() {
    let pl = with_on("  push: { branches: [\"releases/**\", \"!releases/**-alpha\"] }");
    assert!(pl.accepts(&Event::push("refs/heads/releases/10")).is_ok());
    assert!(
        pl.accepts(&Event::push("refs/heads/releases/10-alpha"))
            .is_err()
    );
    let pl = with_on("  push: { branches: [\"!releases/**-alpha\", \"releases/**\"] }");
    assert!(
        pl.accepts(&Event::push("refs/heads/releases/10-alpha"))
            .is_ok()
    );
}

#[test]
fn paths_filters() {
    let pl = with_on("  push: { paths: [\"src/**\", \"!src/**/*.md\"], paths-ignore: [] }");
    let mut ev = Event::push("refs/heads/main");
    assert!(pl.accepts(&ev).is_ok(), "unknown changes run");
    ev.changed_paths = Some(vec!["docs/a.md".into()]);
    assert!(pl.accepts(&ev).is_err());
    ev.changed_paths = Some(vec!["src/x/README.md".into()]);
    assert!(pl.accepts(&ev).is_err());
    ev.changed_paths = Some(vec!["src/x/README.md".into(), "src/main.rs".into()]);
    assert!(pl.accepts(&ev).is_ok());
    let pl = with_on("  push: { paths-ignore: [\"docs/**\"] }");
    ev.changed_paths = Some(vec!["docs/a.md".into()]);
    assert!(pl.accepts(&ev).is_err());
    ev.changed_paths = Some(vec!["docs/a.md".into(), "x".into()]);
    assert!(pl.accepts(&ev).is_ok());
    // tags ignore paths filters
    let pl = with_on("  push: { tags: [\"v*\"], paths: [\"src/**\"] }");
    let mut t = Event::push("refs/tags/v1");
    t.changed_paths = Some(vec!["docs/a.md".into()]);
    assert!(pl.accepts(&t).is_ok());
}

#[test]
fn pull_request_filters_on_the_base_branch() {
    let pl = with_on("  pull_request: { branches: [main], branches-ignore: [] }");
    assert!(
        pl.accepts(&Event::pull_request(1, "main", "feature", false))
            .is_ok()
    );
    assert!(
        pl.accepts(&Event::pull_request(1, "dev", "main", false))
            .is_err()
    );
}

#[test]
fn schedule_image_manual() {
    let pl = with_on(
        "  schedule: [ { cron: \"0 0 * * *\" } ]\n  image: [python:3.11]\n  workflow_dispatch:",
    );
    let s = |c: Option<&str>| Event {
        kind: EventKind::Schedule {
            cron: c.map(str::to_string),
        },
        git_ref: "refs/heads/main".into(),
        changed_paths: None,
    };
    assert!(pl.accepts(&s(None)).is_ok());
    assert!(pl.accepts(&s(Some("0 0 * * *"))).is_ok());
    assert!(pl.accepts(&s(Some("5 0 * * *"))).is_err());
    let i = |r: &str| Event {
        kind: EventKind::Image {
            reference: r.into(),
        },
        git_ref: "refs/heads/main".into(),
        changed_paths: None,
    };
    assert!(pl.accepts(&i("docker.io/library/python:3.11")).is_ok());
    assert!(pl.accepts(&i("python:3.12")).is_err());
    let m = Event {
        kind: EventKind::Manual,
        git_ref: "refs/heads/main".into(),
        changed_paths: None,
    };
    assert!(pl.accepts(&m).is_ok());
    assert!(pl.accepts(&Event::push("refs/heads/main")).is_err());
}

#[test]
fn job_filters() {
    let pl = p(r#"
jobs:
  build: { steps: [ { run: make } ] }
  deploy-eu:
    needs: [build]
    on: { push: { branches-ignore: ["hotfix/**"] } }
    steps: [ { run: deploy eu } ]
  deploy-us:
    needs: [build]
    steps: [ { run: deploy us } ]
"#);
    let main = Event::push("refs/heads/main");
    let hotfix = Event::push("refs/heads/hotfix/1");
    for j in &pl.jobs {
        assert!(pl.job_accepts(j, &main).is_ok());
    }
    let eu = pl.job("deploy-eu").unwrap();
    let r = pl.job_accepts(eu, &hotfix).unwrap_err();
    assert!(r.starts_with("filtered:"), "{r}");
    assert!(
        pl.job_accepts(pl.job("deploy-us").unwrap(), &hotfix)
            .is_ok()
    );
    let order: Vec<&str> = pl
        .topological_order()
        .iter()
        .map(|j| j.name.value.as_str())
        .collect();
    assert_eq!(order, ["build", "deploy-eu", "deploy-us"]);
    let only: Vec<&str> = pl
        .with_dependencies("deploy-us")
        .iter()
        .map(|j| j.name.value.as_str())
        .collect();
    assert_eq!(only, ["build", "deploy-us"]);
}

#[test]
fn secret_groups() {
    let pl = p(r#"
secrets:
  hub:
    keys: [TOKEN]
    allow: { branches: [main], events: [push] }
  any:
    keys: [OTHER]
jobs:
  publish: { secrets: [hub, any], steps: [ { run: x } ] }
"#);
    let hub = pl.secret_group("hub").unwrap();
    let any = pl.secret_group("any").unwrap();
    assert!(
        hub.allows(&Event::push("refs/heads/main"), "publish", None)
            .is_ok()
    );
    let e = hub
        .allows(&Event::push("refs/heads/feature"), "publish", None)
        .unwrap_err();
    assert!(e.contains("not allowed on branch `feature`"), "{e}");
    assert!(
        hub.allows(&Event::push("refs/tags/v1"), "publish", None)
            .is_err()
    );
    let e = hub
        .allows(
            &Event::pull_request(4, "main", "main", false),
            "publish",
            None,
        )
        .unwrap_err();
    assert!(e.contains("pull_request"), "{e}");
    let e = any
        .allows(&Event::pull_request(4, "main", "x", true), "publish", None)
        .unwrap_err();
    assert!(e.contains("forks"), "{e}");
    assert!(
        any.allows(&Event::pull_request(4, "main", "x", false), "publish", None)
            .is_ok()
    );
}

#[test]
fn github_context_and_tags() {
    let pl = p(r#"
images:
  app:
    repositories: [registry.example.com/acme/app]
    tags: |
      type=sha,format=long
      type=ref,event=branch
      type=ref,event=pr
      type=raw,value=stable,enable=${{ github.ref == 'refs/heads/main' }}
    push: ${{ github.event_name != 'pull_request' }}
jobs:
  t: { steps: [ { build: app } ] }
"#);
    let git = GitInfo {
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        default_branch: Some("main".into()),
        commit_time: Some(1_700_000_000),
        ..GitInfo::default()
    };
    let img = pl.image("app").unwrap();
    let ctx = |ev: &Event| {
        drydock_expr::Value::from_pairs([
            ("github", ev.github_context(&git)),
            ("env", drydock_expr::Value::from_pairs::<&str>([])),
        ])
    };
    let main = Event::push("refs/heads/main");
    let out = img
        .compute_tags(&ctx(&main), &main.tag_event(&git, None))
        .unwrap();
    assert_eq!(
        out.refs,
        [
            "registry.example.com/acme/app:main",
            "registry.example.com/acme/app:stable",
            "registry.example.com/acme/app:sha-0123456789abcdef0123456789abcdef01234567",
        ]
    );
    assert_eq!(img.push_decision(&ctx(&main)).unwrap(), None);
    let pr = Event::pull_request(12, "main", "feature", false);
    let out = img
        .compute_tags(&ctx(&pr), &pr.tag_event(&git, None))
        .unwrap();
    assert_eq!(
        out.tags,
        ["pr-12", "sha-0123456789abcdef0123456789abcdef01234567"]
    );
    let why = img.push_decision(&ctx(&pr)).unwrap().unwrap();
    assert!(why.contains("images.app.push is false"), "{why}");
    let gh = pr.github_context(&git);
    assert_eq!(
        gh.get_path("event.pull_request.number"),
        Some(&drydock_expr::Value::Number(12.0))
    );
    assert_eq!(
        gh.get_path("base_ref"),
        Some(&drydock_expr::Value::from("main"))
    );
}
