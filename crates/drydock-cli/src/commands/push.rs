use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use drydock_oci::{Platform, Reference};
use drydock_registry_client::PushOptions;

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Pushes an image of the local store to its registry. Blobs the registry already has are\nskipped; credentials come from `drydock login` / ~/.docker/config.json, or from\nDRYDOCK_REGISTRY_USER and DRYDOCK_REGISTRY_PASSWORD (for CI).\n\nExamples:\n  drydock push localhost:5000/acme/app:1.0\n  drydock push ghcr.io/acme/app:latest --also ghcr.io/acme/app:1.0\n  drydock push localhost:5000/app:1 --from local:app:dev"
)]
pub struct Args {
    /// Where to push (a tag or a digest), and the local image's name unless --from is given.
    reference: String,
    /// The local image to push (default: REFERENCE itself).
    #[arg(long)]
    from: Option<String>,
    /// More references to push the same image to.
    #[arg(long)]
    also: Vec<String>,
    /// For an index only partly in the local store: the platform to push.
    #[arg(long)]
    platform: Option<String>,
    #[arg(long, short)]
    quiet: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let target = Reference::parse(&args.reference)?;
    let source = match &args.from {
        Some(f) => Reference::parse(f.strip_prefix("local:").unwrap_or(f))?,
        None => target.clone(),
    };
    let mut targets = vec![target];
    for a in &args.also {
        targets.push(Reference::parse(a)?);
    }
    let store = crate::home::open_store()?;
    let top = drydock_content::names::get(&store, &source)?
        .with_context(|| format!("no image named {} in the local store", source.familiar()))?;
    let opts = PushOptions {
        platform: args.platform.as_deref().map(Platform::parse).transpose()?,
        mount_from: Vec::new(),
    };
    let client = super::remote::client(args.quiet || args.json)?;
    let pushed = client.push(&store, &top, &targets, &opts)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "digest": pushed.digest,
                "mediaType": pushed.media_type,
                "size": pushed.size,
                "references": pushed.references.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            })
        );
    } else {
        for r in &pushed.references {
            println!("{}", r.familiar());
        }
    }
    Ok(ExitCode::SUCCESS)
}
