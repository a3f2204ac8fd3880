use std::process::ExitCode;

use clap::Args as ClapArgs;
use drydock_oci::{Platform, Reference};

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Pulls an image into the local store, verifying every blob as it arrives. Mirrors from\nregistries.toml ($DRYDOCK_HOME or /etc/drydock) are tried first.\n\nExamples:\n  drydock pull localhost:5000/acme/app:1.0\n  drydock pull --platform linux/arm64 registry.example.com/base/debian:bookworm"
)]
pub struct Args {
    reference: String,
    /// Platform to pull from a multi-platform image (default: this host's).
    #[arg(long)]
    platform: Option<String>,
    #[arg(long, short)]
    quiet: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(
        args.reference
            .strip_prefix("docker://")
            .unwrap_or(&args.reference),
    )?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let store = crate::home::open_store()?;
    let client = super::remote::client(args.quiet || args.json)?;
    let pulled = client.pull(&store, &reference, &platform)?;
    let top = drydock_content::graph::digest_of(&pulled.top)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "reference": reference.to_string(),
                "digest": top,
                "manifest": drydock_content::graph::digest_of(&pulled.image.manifest_descriptor)?,
                "id": pulled.image.config_digest,
                "platform": platform.to_string(),
            })
        );
    } else {
        println!("{} ({top})", reference.familiar());
    }
    Ok(ExitCode::SUCCESS)
}
