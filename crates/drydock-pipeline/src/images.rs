//! Images in a run: the seams to the builder, the tag computation and the registry (small
//! traits, so the server and tests can plug their own), the state of `images.NAME` as jobs
//! build and push, and the root file systems of job and service images.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use drydock_content::Store;
use drydock_expr::Value;
use drydock_oci::spec::Descriptor;
use drydock_oci::{Digest, Platform, Reference};
use drydock_sandbox::SnapshotCache;
use drydock_secret::Secret;
use serde::{Deserialize, Serialize};

use crate::cancel::Cancel;
use crate::plan::ImageSpec;

/// What the engine asks the builder for (one `build:` step).
pub struct BuildRequest<'a> {
    pub image: &'a ImageSpec,
    /// The build context, inside the job's workspace.
    pub context: PathBuf,
    /// The Dockerfile (inside the workspace).
    pub dockerfile: PathBuf,
    /// Build args, expressions evaluated. Never secret values (the engine refuses those).
    pub args: Vec<(String, String)>,
    /// OCI labels from the tag computation, plus the image's own `labels`.
    pub labels: BTreeMap<String, String>,
    /// Names to give the result in the local store (the computed tags, or a run-local name).
    pub names: Vec<Reference>,
    /// Build secrets (`RUN --mount=type=secret,id=KEY`).
    pub secrets: Vec<(String, Secret)>,
    /// `SOURCE_DATE_EPOCH` for a reproducible result (the commit time).
    pub epoch: Option<i64>,
    /// Progress lines (masked by the engine before they are logged).
    pub log: &'a mut (dyn FnMut(&str) + Send),
    pub cancel: &'a Cancel,
}

impl std::fmt::Debug for BuildRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildRequest")
            .field("image", &self.image.name)
            .field("context", &self.context)
            .field("dockerfile", &self.dockerfile)
            .field("args", &self.args)
            .field("names", &self.names)
            .finish()
    }
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The image in the local store (a manifest, or an index for several platforms).
    pub descriptor: Descriptor,
    /// Every step came from the cache.
    pub cached: bool,
}

/// Builds images (drydock-builder in the binary).
pub trait ImageBuilder: Send + Sync {
    fn build(&self, request: BuildRequest<'_>) -> Result<BuiltImage, String>;
}

/// Tags and labels computed for an image and an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputedTags {
    /// Full references (`registry/repo:tag`), for every repository.
    pub tags: Vec<String>,
    /// OCI labels (`org.opencontainers.image.*`).
    pub labels: BTreeMap<String, String>,
}

/// Pushes and pulls (drydock-registry-client in the binary).
pub trait Registry: Send + Sync {
    /// Pushes the image `top` of the local store to every target; returns the pushed digest.
    fn push(
        &self,
        store: &Store,
        top: &Descriptor,
        targets: &[Reference],
    ) -> Result<Digest, String>;
    /// Pulls `reference` into the local store.
    fn pull(&self, store: &Store, reference: &Reference, platform: &Platform)
    -> Result<(), String>;
}

impl Registry for drydock_registry_client::BlockingClient {
    fn push(
        &self,
        store: &Store,
        top: &Descriptor,
        targets: &[Reference],
    ) -> Result<Digest, String> {
        let opts = drydock_registry_client::PushOptions::default();
        drydock_registry_client::BlockingClient::push(self, store, top, targets, &opts)
            .map(|p| p.digest)
            .map_err(|e| e.to_string())
    }

    fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(), String> {
        drydock_registry_client::BlockingClient::pull(self, store, reference, platform)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// No builder: every `build:` step fails saying so.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBuilder;

impl ImageBuilder for NoBuilder {
    fn build(&self, request: BuildRequest<'_>) -> Result<BuiltImage, String> {
        Err(format!(
            "cannot build image {}: this engine has no image builder",
            request.image.name
        ))
    }
}

/// The state of `images.NAME` once a job built or pushed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageState {
    pub name: String,
    /// The job that built (or pushed) it.
    pub job: String,
    /// The image's digest (manifest or index).
    pub digest: Digest,
    /// The descriptor in the local store.
    #[serde(skip)]
    pub descriptor: Option<Descriptor>,
    /// The computed tags (full references), pushed or not.
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub pushed: bool,
    /// Why it was not pushed.
    pub reason: Option<String>,
    /// Whether the build was all cache hits.
    pub cached: bool,
}

impl ImageState {
    /// `images.NAME` in expressions: `digest`, `tags`, `ref`, `pushed`, `labels`.
    pub fn to_value(&self) -> Value {
        Value::from_pairs([
            ("digest", Value::string(self.digest.to_string())),
            (
                "tags",
                Value::array(self.tags.iter().map(Value::string).collect()),
            ),
            ("ref", Value::string(self.reference())),
            ("pushed", Value::Bool(self.pushed)),
            (
                "labels",
                Value::object(
                    self.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::string(v)))
                        .collect(),
                ),
            ),
        ])
    }

    /// A reference pinned to the digest: `repo@sha256:…` of the first tag, else the digest.
    pub fn reference(&self) -> String {
        match self.tags.first().and_then(|t| Reference::parse(t).ok()) {
            Some(r) => format!("{}@{}", r.repository_ref().name(), self.digest),
            None => self.digest.to_string(),
        }
    }

    /// `DRYDOCK_IMAGE_<NAME>_DIGEST`, `_TAGS` (space separated), `_REF`.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let key: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        vec![
            (
                format!("DRYDOCK_IMAGE_{key}_DIGEST"),
                self.digest.to_string(),
            ),
            (format!("DRYDOCK_IMAGE_{key}_TAGS"), self.tags.join(" ")),
            (format!("DRYDOCK_IMAGE_{key}_REF"), self.reference()),
        ]
    }
}

/// A job or service image, ready to be a sandbox root.
#[derive(Debug, Clone)]
pub(crate) struct RootImage {
    pub layers: Vec<PathBuf>,
    pub env: Vec<(String, String)>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

impl RootImage {
    /// Whether a path exists in the image (checked in the layers, topmost first; whiteouts are
    /// not considered).
    pub fn has(&self, path: &str) -> bool {
        let rel = path.trim_start_matches('/');
        self.layers.iter().rev().any(|l| l.join(rel).exists())
    }
}

/// Resolves job and service images: from the local store, pulled when missing, layers
/// extracted once into the snapshot cache.
pub(crate) struct RootImages {
    store: Arc<Store>,
    snapshots: SnapshotCache,
    registry: Arc<dyn Registry>,
    platform: Platform,
    userxattr: bool,
    /// One pull or extraction per reference at a time.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl RootImages {
    pub(crate) fn new(
        store: Arc<Store>,
        snapshots: &Path,
        registry: Arc<dyn Registry>,
        platform: Platform,
    ) -> Self {
        Self {
            store,
            snapshots: SnapshotCache::new(snapshots),
            registry,
            platform,
            userxattr: !rustix::process::geteuid().is_root(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn resolve(&self, reference: &str, log: &dyn Fn(&str)) -> Result<RootImage, String> {
        let r = Reference::parse(reference)
            .map_err(|e| format!("image {reference:?}: not a valid reference: {e}"))?;
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(r.to_string()).or_default().clone()
        };
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let image = match drydock_content::image::load(&self.store, &r, &self.platform) {
            Ok(i) => i,
            Err(drydock_content::ContentError::NameNotFound(_)) => {
                log(&format!(
                    "image {} is not in the local store: pulling it",
                    r.familiar()
                ));
                self.registry
                    .pull(&self.store, &r, &self.platform)
                    .map_err(|e| format!("cannot pull image {}: {e}", r.familiar()))?;
                drydock_content::image::load(&self.store, &r, &self.platform)
                    .map_err(|e| format!("image {}: {e}", r.familiar()))?
            }
            Err(e) => return Err(format!("image {}: {e}", r.familiar())),
        };
        let mut digests = Vec::new();
        for l in image.manifest.layers() {
            digests.push(
                drydock_content::graph::digest_of(l)
                    .map_err(|e| format!("image {}: {e}", r.familiar()))?,
            );
        }
        let store = self.store.clone();
        let userxattr = self.userxattr;
        let source = move |d: &Digest,
                           target: &Path|
              -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let blob = store.open_blob(d)?;
            let (_, tar) = drydock_layer::decompress_detect(blob)?;
            let opts = drydock_layer::ApplyOptions {
                whiteouts: drydock_layer::Whiteouts::Overlay { userxattr },
                ..Default::default()
            };
            drydock_layer::apply(tar, target, &opts)?;
            Ok(())
        };
        let layers = self
            .snapshots
            .ensure_all(&digests, &source)
            .map_err(|e| format!("image {}: {e}", r.familiar()))?;
        let cfg = image.config.config().clone().unwrap_or_default();
        let env = cfg
            .env()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Ok(RootImage {
            layers,
            env,
            entrypoint: cfg.entrypoint().clone().unwrap_or_default(),
            cmd: cfg.cmd().clone().unwrap_or_default(),
            workdir: cfg.working_dir().clone().filter(|w| !w.is_empty()),
            user: cfg.user().clone().filter(|u| !u.is_empty()),
        })
    }
}
