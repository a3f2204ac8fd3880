//! Valid and invalid `drydock.yml` fixtures; the rendered diagnostics of the invalid ones are
//! insta snapshots (`tests/snapshots/`).

use std::path::Path;

fn fixtures(kind: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn valid_fixtures_parse() {
    let all = fixtures("valid");
    assert!(all.len() >= 3);
    for (name, text) in all {
        if let Err(diags) = drydock_config::parse(&text) {
            panic!(
                "{name}:\n{}",
                drydock_diagnostics::render_all(&name, &text, &diags)
            );
        }
    }
}

#[test]
fn invalid_fixtures_render_every_error() {
    let all = fixtures("invalid");
    assert!(all.len() >= 8);
    for (name, text) in all {
        let diags = match drydock_config::parse(&text) {
            Ok(_) => panic!("{name} should not parse"),
            Err(d) => d,
        };
        for d in &diags {
            assert!(d.span.end <= text.len(), "{name}: span past the end: {d:?}");
            assert!(d.code.is_some(), "{name}: diagnostic without a code: {d:?}");
        }
        let rendered = drydock_diagnostics::render_all(&name, &text, &diags);
        let snap = name.trim_end_matches(".yml").to_string();
        insta::assert_snapshot!(snap, rendered);
    }
}
