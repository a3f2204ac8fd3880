use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use drydock_oci::{Platform, Reference};

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Imports a root filesystem tarball (plain, gzip or zstd) as a one-layer image.\n\nExamples:\n  drydock import rootfs.tar --tag mybase:1\n  SOURCE_DATE_EPOCH=0 drydock import rootfs.tar.gz --tag mybase:1"
)]
pub struct Args {
    /// The tarball.
    file: PathBuf,
    /// Name for the image in the local store.
    #[arg(long, short)]
    tag: String,
    /// Platform recorded in the config (default: this host's).
    #[arg(long)]
    platform: Option<String>,
    /// Creation time, seconds since the epoch (default: $SOURCE_DATE_EPOCH, else 0).
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    source_date_epoch: Option<i64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(&args.tag).with_context(|| format!("--tag {:?}", args.tag))?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let store = crate::home::open_store()?;
    let comment = format!(
        "drydock import {}",
        args.file
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let desc = drydock_content::transport::import_rootfs(
        &store,
        &args.file,
        &platform,
        args.source_date_epoch.unwrap_or(0),
        &comment,
    )?;
    drydock_content::names::set(&store, &reference, &desc)?;
    println!("{} {}", reference.familiar(), desc.digest());
    Ok(ExitCode::SUCCESS)
}
