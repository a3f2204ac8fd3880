//! Data-driven cases: `tests/cases/<name>/Dockerfile` (plus optional `options` and
//! `.dockerignore`) -> `tests/cases/<name>/expected`, holding the syntax tree, the rendered
//! diagnostics, the images phase one asks for and the plan.
//!
//! `options` lines: `build-arg K=V`, `target T`, `platform P`, `build-platform P`,
//! `context-file PATH`, `image REF CONFIG_JSON` (the config a resolved image has; other images
//! get a config with only PATH set).
//!
//! Run with `UPDATE_EXPECT=1` to rewrite the expected files, then review the diff.

use std::fmt::Write as _;
use std::path::Path;

use drydock_diagnostics::render_all;
use drydock_dockerfile::Dockerignore;
use drydock_frontend::{BuildOptions, Resolved, ResolvedImage};
use drydock_oci::{Digest, Platform, Reference};
use drydock_plan::ImageConfig;

fn run_case(dir: &Path) -> String {
    let source = std::fs::read_to_string(dir.join("Dockerfile")).unwrap_or_default();
    let mut opts = BuildOptions::new(Platform::parse("linux/amd64").unwrap());
    let mut images: Vec<(String, ImageConfig)> = Vec::new();
    if let Ok(text) = std::fs::read_to_string(dir.join("options")) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            match k {
                "build-arg" => {
                    let (a, b) = v.split_once('=').unwrap_or((v, ""));
                    opts.build_args.insert(a.into(), b.into());
                }
                "target" => opts.target = Some(v.into()),
                "platform" => opts.platform = Platform::parse(v).unwrap(),
                "build-platform" => opts.build_platform = Platform::parse(v).unwrap(),
                "context-file" => opts
                    .context_files
                    .get_or_insert_with(Vec::new)
                    .push(v.into()),
                "image" => {
                    let (r, json) = v.split_once(' ').unwrap();
                    images.push((
                        Reference::parse(r).unwrap().to_string(),
                        ImageConfig::from_json(json.as_bytes()).unwrap(),
                    ));
                }
                other => panic!("{}: unknown option {other}", dir.display()),
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join(".dockerignore")) {
        opts.dockerignore = Dockerignore::parse(&text);
    }

    let mut out = String::new();
    let df = drydock_dockerfile::parse(&source);
    out.push_str("## syntax\n");
    for d in [
        &df.directives.syntax,
        &df.directives.escape,
        &df.directives.check,
    ]
    .into_iter()
    .flatten()
    {
        let _ = writeln!(out, "directive {d:?}");
    }
    for i in &df.instructions {
        let _ = writeln!(
            out,
            "{}-{} {} flags={:?}",
            i.start_line,
            i.end_line,
            i.keyword,
            i.flags
                .iter()
                .map(|f| (&f.name.text, f.value.as_ref().map(|v| &v.text)))
                .collect::<Vec<_>>()
        );
        let _ = writeln!(out, "  {:?}", i.command);
        for h in &i.heredocs {
            let _ = writeln!(
                out,
                "  heredoc {:?} expand={} chomp={} content={:?}",
                h.name, h.expand, h.chomp, h.content
            );
        }
    }

    // Phase one, then resolve every image with a fake registry, then phase two.
    let mut resolved = Resolved::new();
    out.push_str("## images\n");
    match drydock_frontend::base_images(&df, &opts) {
        Ok(reqs) => {
            for r in reqs {
                let _ = writeln!(out, "{} {} (line {})", r.reference, r.platform, r.line);
                let name = r.reference.to_string();
                let config = images
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, c)| c.clone())
                    .unwrap_or_else(|| {
                        let mut c = ImageConfig::default();
                        c.config.env.push(
                            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                                .into(),
                        );
                        c
                    });
                let digest = Digest::sha256(format!("{name} {}", r.platform).as_bytes());
                resolved.insert(&r.reference, &r.platform, ResolvedImage { digest, config });
            }
        }
        Err(_) => out.push_str("(errors)\n"),
    }
    let result = drydock_frontend::convert(&df, &opts, &resolved);
    let (diags, plan) = match result {
        Ok(c) => (c.warnings, Some(c.plan)),
        Err(d) => (d, None),
    };
    out.push_str("## diagnostics\n");
    out.push_str(&render_all("Dockerfile", &source, &diags));
    out.push_str("## plan\n");
    match plan {
        Some(p) => out.push_str(&p.render_text()),
        None => out.push_str("none\n"),
    }
    out
}

#[test]
fn cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failed = Vec::new();
    for dir in &dirs {
        let got = run_case(dir);
        let path = dir.join("expected");
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            if update {
                std::fs::write(&path, &got).unwrap();
            } else {
                failed.push(format!(
                    "--- {}\n{}",
                    dir.file_name().unwrap().to_string_lossy(),
                    first_difference(&want, &got)
                ));
            }
        }
    }
    assert!(
        dirs.len() >= 200,
        "expected at least 200 cases, found {}",
        dirs.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} cases differ (UPDATE_EXPECT=1 rewrites):\n{}",
        failed.len(),
        dirs.len(),
        failed.join("\n")
    );
}

fn first_difference(want: &str, got: &str) -> String {
    let w: Vec<&str> = want.lines().collect();
    let g: Vec<&str> = got.lines().collect();
    for i in 0..w.len().max(g.len()) {
        if w.get(i) != g.get(i) {
            return format!(
                "line {}:\n  want: {}\n  got:  {}",
                i + 1,
                w.get(i).unwrap_or(&"<eof>"),
                g.get(i).unwrap_or(&"<eof>")
            );
        }
    }
    String::new()
}
