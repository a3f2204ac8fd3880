//! Parse and evaluate arbitrary expressions and templates: errors are fine, panics are not.
#![no_main]

use drydock_expr::{Condition, Env, JobStatus, Template, Value, parse_expression};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let ctx = Value::parse_json(
        r#"{"github":{"ref":"refs/heads/main","event":{"labels":[{"name":"a"},{"name":"b"}]}},"env":{"A":"1"},"needs":{"x":{"result":"success"}}}"#,
    )
    .unwrap_or_default();
    let hash = |p: &[String]| -> Result<String, String> { Ok(p.join(",")) };
    for status in [JobStatus::Success, JobStatus::Failure] {
        let env = Env::new(&ctx).with_status(status).with_hash_files(&hash);
        if let Ok(e) = parse_expression(s) {
            let _ = e.eval(&env).map(|v| (v.to_json_pretty(), v.to_display_string()));
        }
        if let Ok(t) = Template::parse(s) {
            let _ = t.eval(&env);
        }
        if let Ok(c) = Condition::parse(s) {
            let _ = c.eval(&env);
        }
    }
});
