use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use drydock_oci::Reference;

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:\n  drydock tag busybox:latest localhost:5000/tools/busybox:1.36")]
pub struct Args {
    /// Existing image in the local store.
    source: String,
    /// New name for it.
    target: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = crate::home::open_store()?;
    let src =
        Reference::parse(&args.source).with_context(|| format!("source {:?}", args.source))?;
    let dst =
        Reference::parse(&args.target).with_context(|| format!("target {:?}", args.target))?;
    if dst.tag().is_none() {
        anyhow::bail!("target {:?} needs a tag, not only a digest", args.target);
    }
    let desc = drydock_content::names::get(&store, &src)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no image {} in the local store (see `drydock images`)",
            src.familiar()
        )
    })?;
    drydock_content::names::set(&store, &dst, &desc)?;
    Ok(ExitCode::SUCCESS)
}
