//! `drydock runs`: the runs recorded under DRYDOCK_HOME, most recent first.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use drydock_db::Db;

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Lists the runs `drydock run` recorded (and, on a server's database, the server's).

Examples:
  drydock runs
  drydock runs --limit 5 --project app
  drydock runs --json"
)]
pub struct Args {
    /// Only runs of this project.
    #[arg(long)]
    project: Option<String>,
    /// How many runs to show.
    #[arg(long, short = 'n', default_value_t = 20)]
    limit: i64,
    #[arg(long)]
    json: bool,
}

pub(crate) fn open_db() -> anyhow::Result<Db> {
    let home = crate::home::drydock_home();
    Db::open(home.join("drydock.db"))
        .with_context(|| format!("opening the run database under {}", home.display()))
}

/// `2024-05-01 12:00:00` (UTC) for a millisecond timestamp.
pub(crate) fn when(ms: i64) -> String {
    drydock_content::image::rfc3339(ms / 1000)
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

pub(crate) fn duration(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!("{:.1}s", (e - s) as f64 / 1000.0),
        (Some(_), None) => "running".into(),
        _ => "-".into(),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let db = open_db()?;
    let runs = db.list_runs(args.project.as_deref(), args.limit.max(1))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs yet (drydock run records them)");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.status.to_string(),
                r.project.clone(),
                r.event.clone(),
                r.git_ref.clone(),
                r.sha.chars().take(7).collect(),
                when(r.started_at.unwrap_or(r.created_at)),
                duration(r.started_at, r.finished_at),
            ]
        })
        .collect();
    let head = [
        "ID",
        "STATUS",
        "PROJECT",
        "EVENT",
        "REF",
        "SHA",
        "STARTED (UTC)",
        "TOOK",
    ];
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s
    };
    println!("{}", line(head.to_vec()));
    for (r, run) in rows.iter().zip(&runs) {
        let mut l = line(r.iter().map(String::as_str).collect());
        if let Some(reason) = &run.reason {
            l.push_str(&format!("  ({reason})"));
        }
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}
