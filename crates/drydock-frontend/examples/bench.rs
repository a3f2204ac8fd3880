//! Parse + check + plan timing: a generated 2,000-line Dockerfile and the 50 largest
//! Dockerfiles of the test corpus. Prints the fastest of N runs per file and per 100 lines.
//!
//! `cargo run --profile bench-fast -p drydock-frontend --example bench [ITERATIONS]`

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use drydock_frontend::BuildOptions;
use drydock_oci::Platform;

/// A realistic, varied Dockerfile of about `lines` lines: several stages, continuations,
/// mounts, heredocs, ARG/ENV expansion and COPY --from.
fn generate(lines: usize) -> String {
    let mut s =
        String::from("# syntax=docker/dockerfile:1\nARG BASE=debian:bookworm\nARG VERSION=1.0\n");
    let mut stage = 0;
    while s.lines().count() < lines {
        s.push_str(&format!("FROM ${{BASE}} AS stage{stage}\nARG VERSION\nENV APP_HOME=/opt/app{stage} VERSION=${{VERSION}}\nWORKDIR $APP_HOME\n"));
        for i in 0..20 {
            s.push_str(&format!(
                "RUN --mount=type=cache,target=/var/cache/apt{i} \\\n    apt-get update && \\\n    apt-get install -y pkg{i} && \\\n    echo \"${{VERSION%.*}} {i}\"\n"
            ));
            s.push_str(&format!("COPY --chown=app:app src/module{i} ./module{i}/\nLABEL module{i}.version=\"$VERSION\"\n"));
            if stage > 0 && i % 5 == 0 {
                s.push_str(&format!(
                    "COPY --from=stage{} /opt/app{}/module{i} /deps/{i}/\n",
                    stage - 1,
                    stage - 1
                ));
            }
        }
        s.push_str("RUN <<EOF\nset -e\necho building\nEOF\n");
        stage += 1;
    }
    // The final stage needs every other stage (through the COPY --from chain).
    s.push_str(&format!(
        "FROM scratch\nCOPY --from=stage{} /opt /opt\nCMD [\"/opt/app0/run\"]\n",
        stage - 1
    ));
    s
}

fn time_one(src: &str, iterations: u32) -> (Duration, usize, usize) {
    let opts = BuildOptions::new(Platform::parse("linux/amd64").expect("platform"));
    let mut ops = 0;
    let mut diags = 0;
    // The fastest run: on a shared machine the minimum is the least disturbed figure.
    let mut best = Duration::MAX;
    for _ in 0..iterations {
        let start = Instant::now();
        let report = drydock_frontend::check(src, &opts);
        best = best.min(start.elapsed());
        ops = report.plan.as_ref().map_or(0, |p| p.ops.len());
        diags = report.diagnostics.len();
    }
    (best, ops, diags)
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let generated = generate(2000);
    let lines = generated.lines().count();
    let (t, ops, _) = time_one(&generated, iterations);
    let mut parse = Duration::MAX;
    for _ in 0..iterations {
        let start = Instant::now();
        let df = drydock_dockerfile::parse(&generated);
        parse = parse.min(start.elapsed());
        assert!(!df.instructions.is_empty());
    }
    println!(
        "generated: parse only {:.3} ms ({:.1} µs per 100 lines)",
        parse.as_secs_f64() * 1e3,
        parse.as_secs_f64() * 1e6 / (generated.lines().count() as f64 / 100.0)
    );
    println!(
        "generated: {lines} lines, {ops} ops: {:.3} ms per file, {:.1} µs per 100 lines",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e6 / (lines as f64 / 100.0)
    );

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<(usize, String, String)> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let text = std::fs::read_to_string(e.path().join("Dockerfile")).ok()?;
                    Some((
                        text.len(),
                        e.file_name().to_string_lossy().into_owned(),
                        text,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    files.truncate(50);
    let (mut total, mut total_lines) = (Duration::ZERO, 0usize);
    for (_, name, text) in &files {
        let (t, ops, diags) = time_one(text, iterations * 10);
        let n = text.lines().count().max(1);
        total += t;
        total_lines += n;
        println!(
            "{name:44} {n:4} lines {ops:3} ops {diags:2} diags: {:8.1} µs per file, {:6.1} µs per 100 lines",
            t.as_secs_f64() * 1e6,
            t.as_secs_f64() * 1e6 / (n as f64 / 100.0)
        );
    }
    println!(
        "corpus: {} files, {total_lines} lines: {:.1} µs per file on average, {:.1} µs per 100 lines",
        files.len(),
        total.as_secs_f64() * 1e6 / files.len().max(1) as f64,
        total.as_secs_f64() * 1e6 / (total_lines as f64 / 100.0)
    );
}
