use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use drydock_diagnostics::{Diagnostic, LineIndex, render_all};

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Reports every error with file:line:col, the line, a caret and hints; exits 1 on error.\n\nExamples:\n  drydock validate\n  drydock validate ci/drydock.yml\n  drydock validate --json . | jq '.[].message'"
)]
pub struct Args {
    /// Pipeline file, or a directory holding drydock.yml.
    #[arg(default_value = "drydock.yml")]
    file: PathBuf,
    /// Print the diagnostics as JSON (an array; empty when the file is valid).
    #[arg(long)]
    json: bool,
}

/// `FILE`, or `FILE/drydock.yml` for a directory.
pub(crate) fn pipeline_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("drydock.yml")
    } else {
        p.to_path_buf()
    }
}

/// Diagnostics of `file` (text `src`) as the JSON array `validate --json` prints and
/// `build --check --json` embeds: severity, code, message, file, 1-based start and end line and
/// column, label, hints.
pub(crate) fn diagnostics_json(file: &str, src: &str, diags: &[Diagnostic]) -> serde_json::Value {
    let idx = LineIndex::new(src);
    serde_json::Value::Array(
        diags
            .iter()
            .map(|d| {
                let start = idx.line_col(src, d.span.start);
                let end = idx.line_col(src, d.span.end);
                serde_json::json!({
                    "severity": d.severity.as_str(),
                    "code": d.code,
                    "message": d.message,
                    "file": file,
                    "line": start.line,
                    "column": start.col,
                    "end_line": end.line,
                    "end_column": end.col,
                    "label": d.label,
                    "hints": d.hints,
                })
            })
            .collect(),
    )
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = pipeline_path(&args.file);
    let src =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let shown = path.display().to_string();
    match drydock_config::parse(&src) {
        Ok(p) => {
            if args.json {
                println!("[]");
            } else {
                println!(
                    "{shown}: ok ({} job{}, {} image{}, {} secret group{})",
                    p.jobs.len(),
                    if p.jobs.len() == 1 { "" } else { "s" },
                    p.images.len(),
                    if p.images.len() == 1 { "" } else { "s" },
                    p.secrets.len(),
                    if p.secrets.len() == 1 { "" } else { "s" },
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&diagnostics_json(&shown, &src, &diags))?
                );
            } else {
                eprint!("{}", render_all(&shown, &src, &diags));
                let n = diags.iter().filter(|d| d.is_error()).count();
                eprintln!("\n{shown}: {n} error{}", if n == 1 { "" } else { "s" });
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
