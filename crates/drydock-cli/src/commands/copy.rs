use std::process::ExitCode;

use clap::Args as ClapArgs;
use drydock_content::transport::{self, Location};
use drydock_oci::Platform;

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Locations: local:REF (or a bare name), oci:DIR[:TAG], docker-archive:FILE[:REF], docker://REF.\nRegistry to registry copies stream blobs (and mount them within one registry); every platform\nof an index is copied unless --platform picks one.\n\nExamples:\n  drydock copy docker://localhost:5000/a:1 docker://registry.example.com/a:1\n  drydock copy oci:/tmp/layout:v1 docker://localhost:5000/app:v1\n  drydock copy local:busybox:latest docker-archive:/tmp/bb.tar\n  drydock copy oci:/tmp/layout:v1 local:myapp:v1\n  drydock copy docker-archive:/tmp/saved.tar local:restored:latest"
)]
pub struct Args {
    source: String,
    destination: String,
    /// Platform to pick from a multi-platform index when the destination holds one image.
    #[arg(long)]
    platform: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let src = Location::parse(&args.source)?;
    let dst = Location::parse(&args.destination)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let digest = if matches!(src, Location::Registry(_)) || matches!(dst, Location::Registry(_)) {
        let explicit = args.platform.as_ref().map(|_| platform.clone());
        super::remote::copy(&src, &dst, explicit.as_ref(), args.json)?
    } else {
        let store = crate::home::open_store()?;
        let copied = transport::copy(&store, &src, &dst, &platform)?;
        drydock_content::graph::digest_of(&copied.descriptor)?
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({"source": src.to_string(), "destination": dst.to_string(), "digest": digest})
        );
    } else {
        println!("copied {src} -> {dst} ({digest})");
    }
    Ok(ExitCode::SUCCESS)
}
