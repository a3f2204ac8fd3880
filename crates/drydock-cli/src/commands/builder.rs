//! `drydock builder prune|du`: the build cache (records of built steps, their layer blobs,
//! extracted snapshots, cache mounts).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args as ClapArgs, Subcommand};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  drydock builder du
  drydock builder prune                       # records unused for 48 hours
  drydock builder prune --keep-storage 10GB   # least recently used first
  drydock builder prune --all")]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Remove build cache: records unused for 48 hours by default.
    Prune(PruneArgs),
    /// Show the build cache's records and size.
    Du(DuArgs),
}

#[derive(Debug, ClapArgs)]
struct PruneArgs {
    /// Remove everything (records, cache mounts, snapshots).
    #[arg(long, short = 'a')]
    all: bool,
    /// Keep at most this much cache (least recently used records go first), e.g. 10GB.
    #[arg(long = "keep-storage", value_parser = parse_size)]
    keep_storage: Option<u64>,
    /// Remove records unused for this long (default 48h unless --keep-storage or --all).
    #[arg(long, value_parser = super::gc::parse_duration)]
    older_than: Option<Duration>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, ClapArgs)]
struct DuArgs {
    #[arg(long)]
    json: bool,
}

/// `10GB`, `500M`, `1024` (bytes); powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let t = t.trim_end_matches("IB").trim_end_matches('B');
    let (num, mult) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 512MB or 10GB"))?;
    Ok((n * mult as f64) as u64)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let home = crate::home::drydock_home();
    let store = crate::home::open_store()?;
    let cache = drydock_builder::BuildCache::new(&home);
    match args.command {
        Sub::Prune(a) => {
            let opts = drydock_builder::PruneOptions {
                all: a.all,
                keep_storage: a.keep_storage,
                older_than: a.older_than.or(if a.all || a.keep_storage.is_some() {
                    None
                } else {
                    Some(Duration::from_secs(48 * 3600))
                }),
            };
            let r = cache
                .prune(&store, &opts)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "records_removed": r.records_removed,
                        "records_kept": r.records_kept,
                        "blobs_removed": r.blobs_removed,
                        "reclaimed_bytes": r.reclaimed_bytes,
                        "snapshots_removed": r.snapshots_removed,
                        "mounts_removed": r.mounts_removed,
                    })
                );
            } else {
                println!(
                    "removed {} records ({} blobs, {} reclaimed), {} snapshots, {} cache mounts; kept {} records",
                    r.records_removed,
                    r.blobs_removed,
                    super::images::human_size(r.reclaimed_bytes),
                    r.snapshots_removed,
                    r.mounts_removed,
                    r.records_kept
                );
            }
        }
        Sub::Du(a) => {
            let mut records = cache.list();
            records.sort_by_key(|(_, _, used)| std::cmp::Reverse(*used));
            let mut seen = std::collections::BTreeSet::new();
            let mut total = 0u64;
            for (_, rec, _) in &records {
                for l in &rec.layers {
                    if seen.insert(l.digest.clone()) {
                        total += l.size;
                    }
                }
            }
            if a.json {
                let list: Vec<serde_json::Value> = records
                    .iter()
                    .map(|(p, rec, used)| {
                        serde_json::json!({
                            "key": p.file_stem().map(|s| s.to_string_lossy().into_owned()),
                            "description": rec.description,
                            "layers": rec.layers.len(),
                            "last_used": used.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"records": list, "layer_bytes": total})
                );
            } else {
                for (_, rec, _) in records.iter().take(50) {
                    let top = rec.layers.last().map(|l| l.size).unwrap_or(0);
                    println!(
                        "{:>10}  {}",
                        super::images::human_size(top),
                        rec.description
                    );
                }
                println!(
                    "{} records, {} of layers",
                    records.len(),
                    super::images::human_size(total)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
