use std::process::ExitCode;

use clap::Args as ClapArgs;

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:\n  drydock images\n  drydock images --json")]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = crate::home::open_store()?;
    let rows = drydock_content::image::summaries(&store)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<16} {:<14} {:<22} {:>10}",
        "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"
    );
    for r in rows {
        println!(
            "{:<40} {:<16} {:<14} {:<22} {:>10}",
            r.repository,
            r.tag,
            r.id.as_ref().map_or("-", |d| d.short(12)),
            r.created.as_deref().unwrap_or("-"),
            r.size.map_or_else(|| "-".to_string(), human_size),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}
