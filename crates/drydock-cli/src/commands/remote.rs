//! Shared by the registry commands (push, pull, copy docker://, inspect docker://, tags list,
//! login): the client built from the environment, and progress output — one line per blob on a
//! terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use drydock_oci::Digest;
use drydock_registry_client::{BlobOutcome, BlockingClient, ClientOptions, Event, Progress};

/// A client configured from `registries.toml` and the standard credential sources.
pub fn client(quiet: bool) -> anyhow::Result<BlockingClient> {
    let home = crate::home::drydock_home();
    let mut opts = ClientOptions::from_env(Some(&home))?;
    if let Some(n) = std::env::var("DRYDOCK_PARALLEL_TRANSFERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.parallelism = n;
    }
    opts.progress = if quiet {
        Progress::none()
    } else {
        Renderer::new().into_progress()
    };
    Ok(BlockingClient::new(opts)?)
}

struct State {
    order: Vec<Digest>,
    text: HashMap<Digest, String>,
    /// `<short digest> <what>` per blob.
    label: HashMap<Digest, String>,
}

/// Progress on stderr.
pub struct Renderer {
    tty: bool,
    state: Mutex<State>,
}

fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn outcome(o: BlobOutcome) -> &'static str {
    match o {
        BlobOutcome::Uploaded => "pushed",
        BlobOutcome::Exists => "already exists",
        BlobOutcome::Mounted => "mounted",
        BlobOutcome::Downloaded => "pulled",
        BlobOutcome::Cached => "already present",
        BlobOutcome::Copied => "copied",
    }
}

impl Renderer {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(State {
                order: Vec::new(),
                text: HashMap::new(),
                label: HashMap::new(),
            }),
        })
    }

    pub fn into_progress(self: Arc<Self>) -> Progress {
        Progress::new(move |e| self.event(e))
    }

    fn event(&self, e: &Event) {
        let mut err = std::io::stderr().lock();
        let mut st = self.state.lock().expect("progress lock");
        match e {
            Event::BlobStart {
                digest,
                size: n,
                what,
            } => {
                let label = format!("{} {what}", digest.short(12));
                let line = format!("{label}: waiting ({})", size(*n));
                st.label.insert(digest.clone(), label);
                if self.tty {
                    st.order.push(digest.clone());
                    st.text.insert(digest.clone(), line.clone());
                    let _ = writeln!(err, "{line}");
                }
            }
            Event::BlobProgress {
                digest,
                done,
                size: total,
            } if self.tty => {
                let pct = if *total == 0 { 100 } else { done * 100 / total };
                let label = st
                    .label
                    .get(digest)
                    .cloned()
                    .unwrap_or_else(|| digest.short(12).to_string());
                let line = format!("{label}: {} / {} ({pct}%)", size(*done), size(*total));
                self.update(&mut err, &mut st, digest, line);
            }
            Event::BlobDone {
                digest,
                size: n,
                outcome: o,
            } => {
                let label = st
                    .label
                    .get(digest)
                    .cloned()
                    .unwrap_or_else(|| digest.short(12).to_string());
                let line = format!("{label}: {} ({})", outcome(*o), size(*n));
                if self.tty {
                    self.update(&mut err, &mut st, digest, line);
                } else {
                    let _ = writeln!(err, "{line}");
                }
            }
            Event::Manifest {
                reference, digest, ..
            } => {
                let _ = writeln!(err, "{reference}: {digest}");
                st.order.clear();
                st.text.clear();
            }
            Event::Retry {
                what,
                attempt,
                wait,
                reason,
            } => {
                let _ = writeln!(
                    err,
                    "retrying {what} in {:.1}s (attempt {attempt}): {reason}",
                    wait.as_secs_f64()
                );
                st.order.clear();
                st.text.clear();
            }
            Event::RateLimit {
                host,
                remaining,
                limit,
            } => {
                let _ = writeln!(
                    err,
                    "warning: {host} rate limit is low: {remaining} of {limit} pulls left"
                );
                st.order.clear();
                st.text.clear();
            }
            Event::Note(n) => {
                let _ = writeln!(err, "{n}");
                st.order.clear();
                st.text.clear();
            }
            _ => {}
        }
    }

    /// Rewrites the blob's line in place (cursor up, clear, write, cursor back down).
    fn update(&self, err: &mut impl Write, st: &mut State, digest: &Digest, line: String) {
        let Some(i) = st.order.iter().position(|d| d == digest) else {
            st.order.push(digest.clone());
            st.text.insert(digest.clone(), line.clone());
            let _ = writeln!(err, "{line}");
            return;
        };
        let up = st.order.len() - i;
        let _ = write!(err, "\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r");
        let _ = err.flush();
        st.text.insert(digest.clone(), line);
    }
}

/// `drydock inspect docker://REF`: the manifest as served (`--raw`), the config (`--config`),
/// or a summary in the shape of the local inspect.
pub fn inspect(
    reference: &drydock_oci::Reference,
    raw: bool,
    config_only: bool,
    platform: &drydock_oci::Platform,
) -> anyhow::Result<std::process::ExitCode> {
    let client = client(true)?;
    let mut out = std::io::stdout().lock();
    if raw {
        let m = client.fetch_manifest(reference)?;
        out.write_all(&m.bytes)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let resolved = client.resolve(reference, platform)?;
    let manifest: drydock_oci::spec::ImageManifest =
        serde_json::from_slice(&resolved.manifest.bytes)?;
    let config_digest = drydock_content::graph::digest_of(manifest.config())?;
    let config_bytes = client.fetch_blob(reference, &config_digest)?;
    if config_only {
        out.write_all(&config_bytes)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let config: serde_json::Value = serde_json::from_slice(&config_bytes)?;
    let summary = super::inspect::summary(
        format!("docker://{}", reference.familiar()),
        &resolved.top_digest,
        &resolved.top_media_type,
        &resolved.manifest_digest,
        &manifest,
        &config_digest,
        &config,
    );
    writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// `drydock copy` when either side is `docker://`: registry to registry streams (and mounts
/// within one registry); otherwise the image goes through the local store.
pub fn copy(
    src: &drydock_content::transport::Location,
    dst: &drydock_content::transport::Location,
    platform: Option<&drydock_oci::Platform>,
    quiet: bool,
) -> anyhow::Result<drydock_oci::Digest> {
    use drydock_content::transport::{self, Location};
    let host = drydock_oci::Platform::host();
    let platform_or_host = platform.unwrap_or(&host);
    let client = client(quiet)?;
    match (src, dst) {
        (Location::Registry(s), Location::Registry(d)) => Ok(client.copy(s, d, platform)?.digest),
        (Location::Registry(s), other) => {
            let store = crate::home::open_store()?;
            let pulled = client.pull(&store, s, platform_or_host)?;
            let copied = transport::write_destination(
                &store,
                &pulled.top,
                std::slice::from_ref(s),
                other,
                platform_or_host,
            )?;
            Ok(drydock_content::graph::digest_of(&copied.descriptor)?)
        }
        (other, Location::Registry(d)) => {
            let store = crate::home::open_store()?;
            let (top, _) = transport::open_source(&store, other)?;
            let opts = drydock_registry_client::PushOptions {
                platform: platform.cloned(),
                mount_from: Vec::new(),
            };
            Ok(client
                .push(&store, &top, std::slice::from_ref(d), &opts)?
                .digest)
        }
        _ => anyhow::bail!("neither side of the copy is a docker:// location"),
    }
}
