use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Subcommand};
use drydock_oci::Reference;

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Examples:\n  drydock kit busybox\n  drydock kit busybox --tag localhost:5000/base/busybox:1\n  drydock kit debian --suite bookworm --tag debian:bookworm"
)]
pub struct Args {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Debug, Subcommand)]
enum Kind {
    /// A busybox image from Debian's busybox-static (reproducible).
    Busybox {
        /// Name in the local store.
        #[arg(long, default_value = "busybox:latest")]
        tag: String,
        /// Timestamps in the image (default: $SOURCE_DATE_EPOCH, else 0).
        #[arg(long, env = "SOURCE_DATE_EPOCH")]
        source_date_epoch: Option<i64>,
    },
    /// A minimal Debian image made with debootstrap (--variant=minbase).
    Debian {
        #[arg(long, default_value = "bookworm")]
        suite: String,
        /// Debian architecture (default: the host's).
        #[arg(long)]
        arch: Option<String>,
        /// Name in the local store (default: debian:SUITE).
        #[arg(long)]
        tag: Option<String>,
        /// Debian mirror (default: the host's apt source).
        #[arg(long)]
        mirror: Option<String>,
        #[arg(long, env = "SOURCE_DATE_EPOCH")]
        source_date_epoch: Option<i64>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = crate::home::open_store()?;
    let (tag, desc) = match args.kind {
        Kind::Busybox {
            tag,
            source_date_epoch,
        } => {
            let tag = Reference::parse(&tag).with_context(|| format!("--tag {tag:?}"))?;
            let opts = drydock_kit::BusyboxOptions {
                tag: tag.clone(),
                epoch: source_date_epoch.unwrap_or(0),
                ..Default::default()
            };
            (tag, drydock_kit::busybox(&store, &opts)?)
        }
        Kind::Debian {
            suite,
            arch,
            tag,
            mirror,
            source_date_epoch,
        } => {
            let tag = match tag {
                Some(t) => Reference::parse(&t).with_context(|| format!("--tag {t:?}"))?,
                None => Reference::parse(&format!("debian:{suite}"))
                    .with_context(|| format!("--suite {suite:?}"))?,
            };
            let opts = drydock_kit::DebianOptions {
                suite,
                arch,
                tag: Some(tag.clone()),
                mirror,
                epoch: source_date_epoch.unwrap_or(0),
                ..Default::default()
            };
            (tag, drydock_kit::debian(&store, &opts)?)
        }
    };
    println!("{} {}", tag.familiar(), desc.digest());
    Ok(ExitCode::SUCCESS)
}
