//! Data-driven cases: `tests/cases/*.txt`, derived from docker/metadata-action's documented
//! examples and rules. Each case:
//!
//! ```text
//! ## name
//! event: push                      (defaults: push, master as default branch, name/app,
//! ref: refs/heads/master            sha 860c1904…, now = commit time = 2020-01-10T00:30:00Z)
//! tags:
//!   type=ref,event=branch          (indented lines belong to tags:/flavor:/labels:)
//! =>
//! name/app:master                  (expected refs in order, or `(none)`)
//! version: master                  (optional)
//! label: key=value                 (optional, each checked)
//! error: substring                 (instead of refs: an error is expected)
//! ```

use drydock_tags::{Flavor, TagEvent, TagsSpec, compute};

#[derive(Default)]
struct Case {
    name: String,
    file: String,
    fields: Vec<(String, String)>,
    tags: String,
    flavor: String,
    labels: Vec<(String, String)>,
    expect: Vec<String>,
}

fn parse_cases(file: &str, text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut cur: Option<Case> = None;
    let mut block: Option<&str> = None;
    let mut in_expect = false;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("## ") {
            cases.extend(cur.take());
            cur = Some(Case {
                name: name.trim().to_string(),
                file: file.to_string(),
                ..Case::default()
            });
            block = None;
            in_expect = false;
            continue;
        }
        let Some(c) = cur.as_mut() else { continue };
        if line.trim().is_empty() || (line.starts_with('#') && !in_expect) {
            continue;
        }
        if in_expect {
            c.expect.push(line.trim().to_string());
            continue;
        }
        if line.trim() == "=>" {
            in_expect = true;
            continue;
        }
        if line.starts_with("  ") {
            let body = line.trim_start();
            match block {
                Some("tags") => {
                    c.tags.push_str(body);
                    c.tags.push('\n');
                }
                Some("flavor") => {
                    c.flavor.push_str(body);
                    c.flavor.push('\n');
                }
                Some("labels") => {
                    let (k, v) = body.split_once('=').expect("label k=v");
                    c.labels.push((k.to_string(), v.to_string()));
                }
                _ => panic!("{file}: {}: indented line outside a block: {line}", c.name),
            }
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{file}: {}: bad line {line}", c.name));
        let (k, v) = (k.trim(), v.trim());
        if matches!(k, "tags" | "flavor" | "labels") && v.is_empty() {
            block = Some(match k {
                "tags" => "tags",
                "flavor" => "flavor",
                _ => "labels",
            });
        } else {
            block = None;
            c.fields.push((k.to_string(), v.to_string()));
        }
    }
    cases.extend(cur);
    cases
}

fn run(c: &Case) -> Result<(), String> {
    let get = |k: &str| {
        c.fields
            .iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.clone())
    };
    let t0 = 1_578_616_200; // 2020-01-10T00:30:00Z
    let ev = TagEvent {
        event_name: get("event").unwrap_or_else(|| "push".into()),
        git_ref: get("ref").unwrap_or_else(|| "refs/heads/master".into()),
        sha: get("sha").unwrap_or_else(|| "860c1904a1ce19322e91ac35af1ab07466440c37".into()),
        default_branch: Some(get("default_branch").unwrap_or_else(|| "master".into())),
        pr_number: get("pr").map(|p| p.parse().unwrap()),
        base_ref: get("base_ref"),
        commit_time: Some(get("commit_time").map_or(t0, |t| t.parse().unwrap())),
        now: Some(get("now").map_or(t0, |t| t.parse().unwrap())),
        describe: get("describe"),
        repo_url: get("repo_url"),
        repo_name: get("repo_name"),
        description: None,
        licenses: get("licenses"),
        short_sha_length: get("short_sha_length").map_or(0, |n| n.parse().unwrap()),
    };
    let images: Vec<String> = get("images")
        .unwrap_or_else(|| "name/app".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let want_err: Vec<&str> = c
        .expect
        .iter()
        .filter_map(|l| l.strip_prefix("error:"))
        .map(str::trim)
        .collect();
    let result = TagsSpec::parse(&c.tags)
        .and_then(|s| Flavor::parse(&c.flavor).map(|f| (s, f)))
        .and_then(|(s, f)| compute(&s, &f, &ev, &images, &c.labels));
    match result {
        Err(errs) => {
            let all: Vec<String> = errs
                .iter()
                .map(|e| format!("{} [{}]", e.message, e.hints.join("; ")))
                .collect();
            if want_err.is_empty() {
                return Err(format!("unexpected error: {}", all.join(" | ")));
            }
            for w in want_err {
                if !all.iter().any(|m| m.contains(w)) {
                    return Err(format!(
                        "want error containing `{w}`, got: {}",
                        all.join(" | ")
                    ));
                }
            }
            Ok(())
        }
        Ok(out) => {
            if !want_err.is_empty() {
                return Err(format!("want error {want_err:?}, got tags {:?}", out.refs));
            }
            let want_refs: Vec<&str> = c
                .expect
                .iter()
                .map(String::as_str)
                .filter(|l| {
                    !l.starts_with("version:") && !l.starts_with("label:") && *l != "(none)"
                })
                .collect();
            if out.refs != want_refs {
                return Err(format!("want refs {want_refs:?}\n     got {:?}", out.refs));
            }
            for l in &c.expect {
                if let Some(v) = l.strip_prefix("version:") {
                    let v = v.trim();
                    let got = out.version.as_deref().unwrap_or("");
                    if got != v {
                        return Err(format!("want version `{v}`, got `{got}`"));
                    }
                }
                if let Some(kv) = l.strip_prefix("label:") {
                    let (k, v) = kv.trim().split_once('=').expect("label k=v");
                    match out.labels.get(k) {
                        Some(g) if g == v => {}
                        got => return Err(format!("label {k}: want `{v}`, got {got:?}")),
                    }
                }
            }
            Ok(())
        }
    }
}

#[test]
fn metadata_action_cases() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut total = 0;
    let mut failures = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        for c in parse_cases(&name, &text) {
            total += 1;
            if let Err(e) = run(&c) {
                failures.push(format!("{} / {}: {e}", c.file, c.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total >= 100, "only {total} cases");
}
