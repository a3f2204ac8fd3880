use std::process::ExitCode;
use std::time::Duration;

use clap::Args as ClapArgs;

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Removes blobs that no name in the local store (and no build cache record) reaches.\n\nExamples:\n  drydock gc --dry-run\n  drydock gc --grace 0s"
)]
pub struct Args {
    /// Report what would be removed without removing it.
    #[arg(long)]
    dry_run: bool,
    /// Keep unreferenced blobs younger than this (they may belong to a write in progress).
    /// Accepts s, m, h suffixes.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    grace: Duration,
    #[arg(long)]
    json: bool,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 15m, 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("invalid duration {s:?}: unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = crate::home::open_store()?;
    let opts = drydock_content::gc::GcOptions {
        dry_run: args.dry_run,
        grace: args.grace,
        // The build cache's records keep their layers.
        extra_roots: drydock_builder::BuildCache::new(&crate::home::drydock_home()).roots(),
    };
    let report = drydock_content::gc::collect(&store, &opts)?;
    if args.json {
        let removed: Vec<_> = report
            .removed
            .iter()
            .map(|b| serde_json::json!({"digest": b.digest, "size": b.size}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "dry_run": args.dry_run,
                "removed": removed,
                "reclaimed_bytes": report.reclaimed_bytes,
                "kept": report.kept,
                "kept_recent": report.kept_recent,
                "stale_ingest_files": report.stale_ingest_files,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for b in &report.removed {
        println!("{verb} {} ({} bytes)", b.digest, b.size);
    }
    println!(
        "{verb} {} blobs, {} reclaimed; kept {} reachable and {} recent",
        report.removed.len(),
        super::images::human_size(report.reclaimed_bytes),
        report.kept,
        report.kept_recent
    );
    Ok(ExitCode::SUCCESS)
}
