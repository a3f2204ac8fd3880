//! Data-driven evaluation cases: `tests/cases/eval.txt`.

use drydock_expr::{Env, HashFiles, JobStatus, ParseOptions, Value, parse_expression_with};

fn contexts() -> Value {
    let json = r#"{
      "github": {
        "event_name": "push",
        "ref": "refs/heads/main",
        "ref_name": "main",
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "event": { "pull_request": { "number": 42 } }
      },
      "env": { "APP_ENV": "production", "with-dash": "dash" },
      "arr": [1, "two", true],
      "labels": [ { "name": "bug" }, { "name": "docs" } ],
      "needs": {
        "build": { "result": "failure", "outputs": {} },
        "test": { "result": "success", "outputs": { "version": "1.0" } }
      },
      "obj": { "k": "v" },
      "matrix": { "a": [1, 2], "b": [3, 4] }
    }"#;
    let v = Value::parse_json(json).unwrap();
    // `arr2` is a different array with the same content (identity comparison).
    let Value::Object(map) = &v else {
        unreachable!()
    };
    let mut map = map.as_ref().clone();
    map.insert(
        "arr2".into(),
        Value::parse_json(r#"[1, "two", true]"#).unwrap(),
    );
    Value::object(map)
}

#[test]
fn eval_cases() {
    let ctx = contexts();
    let hash: &HashFiles = &|p: &[String]| {
        if p.iter().any(|s| s == "fail") {
            Err("no files matched".into())
        } else {
            Ok(format!("hash:{}", p.join(",")))
        }
    };
    let env = Env::new(&ctx)
        .with_status(JobStatus::Success)
        .with_hash_files(hash);
    let opts = ParseOptions::with_contexts(&[
        "github", "env", "arr", "arr2", "labels", "needs", "obj", "matrix",
    ]);
    let text = include_str!("cases/eval.txt");
    let mut failures = Vec::new();
    let mut count = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        count += 1;
        let (expr, want, want_err) = if let Some((e, w)) = line.split_once(" => ") {
            (e, w, false)
        } else if let Some((e, w)) = line.split_once(" =! ") {
            (e, w, true)
        } else {
            panic!("line {}: no ' => ' or ' =! '", n + 1)
        };
        let got = parse_expression_with(expr, &opts).and_then(|e| e.eval(&env));
        match (got, want_err) {
            (Ok(v), false) => {
                let got = v.to_json();
                if got != want {
                    failures.push(format!(
                        "line {}: {expr}\n   want {want}\n    got {got}",
                        n + 1
                    ));
                }
            }
            (Err(e), true) => {
                let msg = format!("{} {}", e.message, e.hints.join(" "));
                if !msg.contains(want) {
                    failures.push(format!(
                        "line {}: {expr}\n   want error containing {want}\n    got error {msg}",
                        n + 1
                    ));
                }
            }
            (Ok(v), true) => failures.push(format!(
                "line {}: {expr}\n   want error {want}\n    got {}",
                n + 1,
                v.to_json()
            )),
            (Err(e), false) => failures.push(format!(
                "line {}: {expr}\n   want {want}\n    got error {}",
                n + 1,
                e.message
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count > 150, "only {count} cases");
}

#[test]
fn status_functions_follow_the_job_status() {
    let ctx = contexts();
    for (status, s, f, c) in [
        (JobStatus::Success, true, false, false),
        (JobStatus::Failure, false, true, false),
        (JobStatus::Cancelled, false, false, true),
    ] {
        let env = Env::new(&ctx).with_status(status);
        let ev = |t: &str| {
            drydock_expr::parse_expression(t)
                .unwrap()
                .eval(&env)
                .unwrap()
        };
        assert_eq!(ev("success()"), Value::Bool(s));
        assert_eq!(ev("failure()"), Value::Bool(f));
        assert_eq!(ev("cancelled()"), Value::Bool(c));
        assert_eq!(ev("always()"), Value::Bool(true));
    }
}

#[test]
fn hash_files_without_a_callback_is_an_error() {
    let ctx = contexts();
    let e = drydock_expr::parse_expression("hashFiles('x')")
        .unwrap()
        .eval(&Env::new(&ctx))
        .unwrap_err();
    assert!(e.message.contains("not available"));
}
