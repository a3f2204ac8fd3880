//! [`Builder::build`]: a Dockerfile build from request to stored, named, exported image.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use drydock_content::Store;
use drydock_diagnostics::Diagnostic;
use drydock_dockerfile::Dockerignore;
use drydock_frontend::{BuildOptions, ImageRequest, Resolved, ResolvedImage};
use drydock_oci::spec::Descriptor;
use drydock_oci::{Digest, Platform, Reference};
use drydock_plan::{ImageConfig, OpId};
use drydock_registry_client::{BlockingClient, ClientOptions, PushOptions};
use serde_json::Value;

use crate::cache::BuildCache;
use crate::chain::{Chain, LayerRef};
use crate::context::{Context, read_small};
use crate::error::{BuildError, SourceText};
use crate::hashcache::HashCache;
use crate::image::{self, BaseImage};
use crate::progress::Event;
use crate::request::{BuildOutput, BuildRequest, BuildStats, DockerfileSource, Output, PullPolicy};
use crate::snapshots::Snapshots;
use crate::solver::{self, Env};

/// Builds images under one `DRYDOCK_HOME`: its content store, build cache and snapshots.
/// Cheap to share between threads; builds may run concurrently.
pub struct Builder {
    home: PathBuf,
    store: Store,
    cache: BuildCache,
    snapshots: Snapshots,
    init_binary: Option<PathBuf>,
    registry: Mutex<Option<Arc<BlockingClient>>>,
    registry_options: Mutex<Option<ClientOptions>>,
    /// Running as root of a user namespace (a rootless build): overlayfs `userxattr`, no device
    /// nodes, no cgroups.
    rootless: bool,
    /// Not root at all (no user namespace entered): builds are refused.
    unprivileged: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").field("home", &self.home).finish()
    }
}

impl Builder {
    /// A builder over `home` (`$DRYDOCK_HOME`): the store in `home/content`, the cache in
    /// `home/cache`, sandbox runs in `home/sandbox`.
    pub fn new(home: impl Into<PathBuf>) -> Result<Self, BuildError> {
        let home = home.into();
        let store = Store::open(home.join("content"))?;
        let cache = BuildCache::new(&home);
        let unprivileged = !rustix::process::geteuid().is_root();
        let rootless = unprivileged || drydock_sandbox::in_user_namespace();
        let snapshots = Snapshots::new(cache.snapshots_dir(), store.clone(), rootless);
        Ok(Self {
            home,
            store,
            cache,
            snapshots,
            init_binary: None,
            registry: Mutex::new(None),
            registry_options: Mutex::new(None),
            rootless,
            unprivileged,
        })
    }

    /// The binary the sandbox re-executes as its init (default: `$DRYDOCK_SANDBOX_INIT`, else
    /// the current executable, which must call `drydock_sandbox::maybe_run_init`).
    pub fn with_init_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.init_binary = Some(path.into());
        self
    }

    /// Registry client options (registries.toml, credentials); default: from the environment
    /// and `DRYDOCK_HOME`.
    pub fn with_registry_options(self, opts: ClientOptions) -> Self {
        if let Ok(mut o) = self.registry_options.lock() {
            *o = Some(opts);
        }
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn cache(&self) -> &BuildCache {
        &self.cache
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    fn registry(&self) -> Result<Arc<BlockingClient>, BuildError> {
        let mut g = self
            .registry
            .lock()
            .map_err(|_| BuildError::Cache("registry client lock".into()))?;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let opts = match self.registry_options.lock().ok().and_then(|o| o.clone()) {
            Some(o) => o,
            None => ClientOptions::from_env(Some(&self.home))?,
        };
        let c = Arc::new(BlockingClient::new(opts)?);
        *g = Some(c.clone());
        Ok(c)
    }

    /// Runs a build. Blocking (it runs its own small runtimes for registry and HTTP work):
    /// call it from a plain thread, or from async code through `spawn_blocking`. Progress goes
    /// to `req.progress`, `req.cancel` stops it; several builds may run at once.
    pub fn build(&self, req: BuildRequest) -> Result<BuildOutput, BuildError> {
        if self.unprivileged {
            // Layers would record the caller's uid for every file and COPY --chown could not
            // chown: a non-root build must run as root of a user namespace that maps the
            // user's subordinate ids (`drydock build` re-executes itself inside one).
            return Err(BuildError::Unsupported(
                "building as a non-root user outside a user namespace: run the build through `drydock build` (it enters a user namespace with your /etc/subuid and /etc/subgid ranges) or as root".into(),
            ));
        }
        req.secrets.check_files()?;
        let _lock = self.cache.lock(false)?;
        let progress = req.progress.clone();
        let tmp = self.cache.tmp_dir();
        let context = Context::prepare(&req.context, &tmp)?;
        let (source, ignore) = self.read_dockerfile(&req.dockerfile, &context)?;
        let epoch = req.source_date_epoch.or(context.commit_time).unwrap_or(0);
        let df = drydock_dockerfile::parse(&source.text);
        let stage_count = df
            .instructions
            .iter()
            .filter(|i| i.keyword == drydock_dockerfile::Keyword::From)
            .count();
        let platforms = if req.platforms.is_empty() {
            vec![Platform::host()]
        } else {
            req.platforms.clone()
        };
        let hashes = HashCache::load(self.cache.file_hashes());
        let step_ids = Mutex::new(HashMap::new());
        let mut per_platform = Vec::new();
        let mut warnings = Vec::new();
        let mut stats = BuildStats::default();
        let mut first_layers: Option<Chain> = None;
        for platform in &platforms {
            let mut opts = BuildOptions::new(platform.clone());
            opts.build_platform = Platform::host();
            opts.file_name = source.name.clone();
            opts.target = req.target.clone();
            opts.build_args = req.build_args.clone();
            opts.dockerignore = ignore.clone();
            let requests = drydock_frontend::base_images(&df, &opts)
                .map_err(|d| dockerfile_error(&source, d))?;
            let mut resolved = Resolved::new();
            let mut bases: HashMap<Digest, BaseImage> = HashMap::new();
            for r in &requests {
                if resolved.get(&r.reference, &r.platform).is_some() {
                    continue;
                }
                let (base, config) = self.resolve_base(r, req.pull, &progress)?;
                resolved.insert(
                    &r.reference,
                    &r.platform,
                    ResolvedImage {
                        digest: base.manifest.clone(),
                        config,
                    },
                );
                bases.insert(base.manifest.clone(), base);
            }
            let conv = drydock_frontend::convert(&df, &opts, &resolved)
                .map_err(|d| dockerfile_error(&source, d))?;
            if warnings.is_empty() {
                for w in &conv.warnings {
                    let text = drydock_diagnostics::render(&source.name, &source.text, w);
                    progress.emit(&Event::Warning(text.clone()));
                    warnings.push(text);
                }
            }
            let plan = conv.plan;
            let mut needed: Vec<OpId> = vec![plan.root.clone()];
            needed.extend(plan.history.iter().filter_map(|s| s.op.clone()));
            let images: HashMap<Digest, Chain> = bases
                .iter()
                .map(|(d, b)| (d.clone(), b.layers.clone()))
                .collect();
            let env = Env {
                store: &self.store,
                cache: &self.cache,
                snapshots: &self.snapshots,
                hashes: &hashes,
                context: &context,
                req: &req,
                epoch,
                sandbox_dir: self.home.join("sandbox"),
                init_binary: self.init_binary.clone(),
                images: &images,
                source: Some(&source),
                stage_count,
                rootless: self.rootless,
                progress: progress.clone(),
                step_ids: &step_ids,
            };
            let solved = solver::solve(&plan, &env, &needed);
            hashes.save();
            for w in self.snapshots.take_warnings() {
                progress.emit(&Event::Warning(w.clone()));
                warnings.push(w);
            }
            let solved = solved?;
            stats.cached += solved.cached;
            stats.executed += solved.executed;
            progress.message(format!("exporting {platform}"));
            let a = image::assemble(
                &self.store,
                &plan,
                &solved.states,
                &bases,
                &req.labels,
                epoch,
            )?;
            if first_layers.is_none() {
                first_layers = Some(a.layers.clone());
            }
            per_platform.push((platform.clone(), a.manifest, a.config_digest));
        }
        let top: Descriptor = if per_platform.len() == 1 {
            per_platform[0].1.clone()
        } else {
            let list: Vec<(Platform, Descriptor)> = per_platform
                .iter()
                .map(|(p, d, _)| (p.clone(), d.clone()))
                .collect();
            image::index(&self.store, &list)?
        };
        let layers = first_layers.unwrap_or_default();
        let first_platform = platforms[0].clone();
        let mut named = Vec::new();
        for o in &req.outputs {
            match o {
                Output::Store => {
                    for t in &req.tags {
                        let t = if t.tag().is_none() && t.digest().is_none() {
                            t.with_tag("latest").unwrap_or_else(|_| t.clone())
                        } else {
                            t.clone()
                        };
                        drydock_content::names::set(&self.store, &t, &top)?;
                        named.push(t);
                    }
                }
                Output::OciDir(d) => {
                    progress.message(format!("writing OCI layout {}", d.display()));
                    crate::export::oci_dir(&self.store, &top, d, &req.tags, &first_platform)?
                }
                Output::DockerArchive(f) => {
                    progress.message(format!("writing docker archive {}", f.display()));
                    crate::export::docker_archive(&self.store, &top, f, &req.tags, &first_platform)?
                }
                Output::LocalDir(d) => {
                    progress.message(format!("writing files to {}", d.display()));
                    crate::export::local_dir(&self.store, &layers, d)?
                }
                Output::Tar(f) => {
                    progress.message(format!("writing tar {}", f.display()));
                    crate::export::tar_file(&self.store, &layers, f, &tmp, epoch)?
                }
            }
        }
        let mut pushed = Vec::new();
        if req.push {
            if req.tags.is_empty() {
                return Err(BuildError::Request(
                    "--push needs at least one -t NAME".into(),
                ));
            }
            progress.message(format!(
                "pushing {}",
                req.tags
                    .iter()
                    .map(Reference::familiar)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let client = self.registry()?;
            let p = client.push(
                &self.store,
                &top,
                &req.tags,
                &PushOptions {
                    platform: Some(first_platform.clone()),
                    mount_from: Vec::new(),
                },
            )?;
            for r in p.references {
                pushed.push((r, p.digest.clone()));
            }
        }
        Ok(BuildOutput {
            config_digest: per_platform[0].2.clone(),
            descriptor: top,
            layers,
            platforms: per_platform,
            tags: named,
            pushed,
            warnings,
            stats,
            source_date_epoch: epoch,
        })
    }

    fn read_dockerfile(
        &self,
        src: &DockerfileSource,
        context: &Context,
    ) -> Result<(SourceText, Dockerignore), BuildError> {
        let (name, text, path) = match src {
            DockerfileSource::InContext(p) => {
                let path = context.dir.join(p.trim_start_matches('/'));
                (p.clone(), read_small(&path)?, Some(path))
            }
            DockerfileSource::Path(p) => (p.display().to_string(), read_small(p)?, Some(p.clone())),
            DockerfileSource::Inline { name, text } => (name.clone(), text.clone(), None),
        };
        let mut ignore_text = None;
        if let Some(p) = &path {
            let mut n = p.as_os_str().to_owned();
            n.push(".dockerignore");
            let specific = PathBuf::from(n);
            if specific.is_file() {
                ignore_text = Some(read_small(&specific)?);
            }
        }
        if ignore_text.is_none() {
            let p = context.dir.join(".dockerignore");
            if p.is_file() {
                ignore_text = Some(read_small(&p)?);
            }
        }
        let ignore = ignore_text
            .map(|t| Dockerignore::parse(&t))
            .unwrap_or_default();
        Ok((SourceText { name, text }, ignore))
    }

    /// Finds a base image: the local store and/or a registry, as the pull policy says.
    fn resolve_base(
        &self,
        r: &ImageRequest,
        policy: PullPolicy,
        progress: &crate::progress::Progress,
    ) -> Result<(BaseImage, ImageConfig), BuildError> {
        let mut looked = Vec::new();
        let store_dir = self.store.root().display().to_string();
        if policy != PullPolicy::Always {
            match drydock_content::image::load(&self.store, &r.reference, &r.platform) {
                Ok(img) => return self.base_from(r, img),
                Err(e) => looked.push(format!("local store {store_dir}: {e}")),
            }
            if policy == PullPolicy::Never {
                return Err(BuildError::BaseImage {
                    reference: r.reference.familiar(),
                    line: r.line,
                    looked: {
                        looked.push("registries not asked (--pull never)".into());
                        looked
                    },
                });
            }
        }
        progress.message(format!(
            "pulling {} for {}",
            r.reference.familiar(),
            r.platform
        ));
        let client = self.registry()?;
        match client.pull(&self.store, &r.reference, &r.platform) {
            Ok(p) => self.base_from(r, p.image),
            Err(e) => {
                let eps: Vec<String> = client
                    .client()
                    .pull_endpoints(&r.reference)
                    .iter()
                    .map(|ep| {
                        if ep.mirror {
                            format!("{} (mirror)", ep.host)
                        } else {
                            ep.host.clone()
                        }
                    })
                    .collect();
                looked.push(format!("registry {}: {e}", eps.join(", ")));
                Err(BuildError::BaseImage {
                    reference: r.reference.familiar(),
                    line: r.line,
                    looked,
                })
            }
        }
    }

    fn base_from(
        &self,
        r: &ImageRequest,
        img: drydock_content::image::Image,
    ) -> Result<(BaseImage, ImageConfig), BuildError> {
        let bytes = self.store.read_blob(&img.config_digest)?;
        let config: Value = serde_json::from_slice(&bytes).map_err(|e| BuildError::BaseImage {
            reference: r.reference.familiar(),
            line: r.line,
            looked: vec![format!("config {}: {e}", img.config_digest)],
        })?;
        let parsed = ImageConfig::from_json(&bytes).map_err(|e| BuildError::BaseImage {
            reference: r.reference.familiar(),
            line: r.line,
            looked: vec![format!("config {}: {e}", img.config_digest)],
        })?;
        let diff_ids: Vec<Digest> = config
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().and_then(|s| Digest::parse(s).ok()))
                    .collect()
            })
            .unwrap_or_default();
        let descs = img.manifest.layers();
        if diff_ids.len() != descs.len() {
            return Err(BuildError::BaseImage {
                reference: r.reference.familiar(),
                line: r.line,
                looked: vec![format!(
                    "image {} has {} layers but {} diff IDs",
                    img.manifest_descriptor.digest(),
                    descs.len(),
                    diff_ids.len()
                )],
            });
        }
        let mut layers = Vec::new();
        for (d, diff_id) in descs.iter().zip(diff_ids) {
            layers.push(LayerRef {
                digest: drydock_content::graph::digest_of(d)?,
                diff_id,
                size: d.size(),
                media_type: d.media_type().to_string(),
            });
        }
        let manifest = drydock_content::graph::digest_of(&img.manifest_descriptor)?;
        Ok((
            BaseImage {
                reference: r.reference.to_string(),
                manifest,
                layers,
                config,
            },
            parsed,
        ))
    }
}

fn dockerfile_error(source: &SourceText, diagnostics: Vec<Diagnostic>) -> BuildError {
    BuildError::Dockerfile {
        source_text: source.clone(),
        diagnostics,
    }
}

/// Labels from `--label KEY=VALUE` flags.
pub fn parse_labels(list: &[String]) -> Result<BTreeMap<String, String>, BuildError> {
    let mut out = BTreeMap::new();
    for l in list {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            return Err(BuildError::Request(format!(
                "--label {l:?}: expected KEY=VALUE"
            )));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn builders_and_requests_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<super::Builder>();
        send::<crate::BuildRequest>();
        send::<crate::BuildOutput>();
        send::<crate::BuildError>();
    }
}
