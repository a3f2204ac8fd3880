use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use drydock_content::transport::Location;
use drydock_content::{Store, graph, image};
use drydock_oci::spec::ImageManifest;
use drydock_oci::{Digest, Platform};

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Examples:\n  drydock inspect busybox\n  drydock inspect --raw oci:/tmp/layout:latest\n  drydock inspect --config docker-archive:/tmp/bb.tar"
)]
pub struct Args {
    /// Image location: a local name, oci:DIR[:TAG] or docker-archive:FILE[:REF].
    location: String,
    /// Print the manifest (or index) exactly as stored.
    #[arg(long, conflicts_with = "config")]
    raw: bool,
    /// Print the image config exactly as stored.
    #[arg(long)]
    config: bool,
    /// Platform to pick from a multi-platform index (default: this host's).
    #[arg(long)]
    platform: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let location = Location::parse(&args.location)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let (store, top) = match &location {
        Location::OciDir { path, tag } => {
            // Read the layout in place: inspecting must not copy anything.
            let layout = Store::open_existing(path)?;
            let entries = drydock_content::names::entries(&layout)?;
            let top = match tag {
                Some(t) => entries
                    .into_iter()
                    .find(|(n, _)| n.as_deref() == Some(t.as_str())),
                None if entries.len() == 1 => entries.into_iter().next(),
                None => anyhow::bail!(
                    "{} holds {} images; name one with oci:DIR:TAG",
                    path.display(),
                    entries.len()
                ),
            }
            .map(|(_, d)| d)
            .with_context(|| format!("no such image in {}", path.display()))?;
            (layout, top)
        }
        Location::Registry(r) => {
            return super::remote::inspect(r, args.raw, args.config, &platform);
        }
        other => {
            let store = crate::home::open_store()?;
            let (top, _) = drydock_content::transport::open_source(&store, other)?;
            (store, top)
        }
    };
    let top_digest = graph::digest_of(&top)?;
    let mut out = std::io::stdout().lock();
    if args.raw {
        out.write_all(&store.read_blob(&top_digest)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let img = image::resolve(&store, &top, &platform, &args.location)?;
    if args.config {
        out.write_all(&store.read_blob(&img.config_digest)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let config: serde_json::Value = store.read_json(&img.config_digest, "image config")?;
    let top_media_type = top.media_type().to_string();
    let summary = summary(
        location.to_string(),
        &top_digest,
        &top_media_type,
        &graph::digest_of(&img.manifest_descriptor)?,
        &img.manifest,
        &img.config_digest,
        &config,
    );
    writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
    Ok(ExitCode::SUCCESS)
}

/// What `drydock inspect` prints for an image, local or remote (`docker://`): where it was
/// found, the digest and media type of what that names, the digest of the manifest chosen for
/// the platform, then the config's digest (the image ID), platform, size (config and layers),
/// layers, diff IDs, config and history.
pub(crate) fn summary(
    name: String,
    top_digest: &Digest,
    top_media_type: &str,
    manifest_digest: &Digest,
    manifest: &ImageManifest,
    config_digest: &Digest,
    config: &serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "Name": name,
        "Digest": top_digest,
        "MediaType": top_media_type,
        "ManifestDigest": manifest_digest,
        "Id": config_digest,
        "Created": config.get("created"),
        "Architecture": config.get("architecture"),
        "Os": config.get("os"),
        "Variant": config.get("variant"),
        "Size": manifest.config().size() + manifest.layers().iter().map(|l| l.size()).sum::<u64>(),
        "Layers": manifest.layers().iter().map(|l| serde_json::json!({
            "MediaType": l.media_type().to_string(),
            "Digest": l.digest().to_string(),
            "Size": l.size(),
        })).collect::<Vec<_>>(),
        "DiffIds": config.pointer("/rootfs/diff_ids"),
        "Config": config.get("config"),
        "History": config.get("history"),
    })
}
