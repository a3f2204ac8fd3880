//! What a caller asks a build for ([`BuildRequest`]) and gets back ([`BuildOutput`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use drydock_oci::spec::Descriptor;
use drydock_oci::{Digest, Platform, Reference};

use crate::chain::LayerRef;
use crate::context::ContextSource;
use crate::error::BuildError;
use crate::progress::{Cancel, Progress};

/// Where the Dockerfile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerfileSource {
    /// A path inside the context (default `Dockerfile`).
    InContext(String),
    /// A file anywhere (`-f FILE` on the command line).
    Path(PathBuf),
    /// Text given directly (`-f -`, or a pipeline that generated it); `name` is how
    /// diagnostics call it.
    Inline { name: String, text: String },
}

impl Default for DockerfileSource {
    fn default() -> Self {
        DockerfileSource::InContext("Dockerfile".into())
    }
}

/// When to ask a registry for base images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Always resolve on the registry (and pull what changed).
    Always,
    /// Use the local store when it has the image (default).
    #[default]
    Missing,
    /// Never touch the network; the image must be in the local store.
    Never,
}

/// Where a secret's value comes from (read when a step needs it).
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
    Value(Vec<u8>),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::File(p) => write!(f, "File({})", p.display()),
            SecretSource::Env(v) => write!(f, "Env({v})"),
            SecretSource::Value(v) => write!(f, "Value(<{} bytes redacted>)", v.len()),
        }
    }
}

/// The secrets of a build, by id. Values never enter plans, cache keys, layers or logs.
#[derive(Debug, Clone, Default)]
pub struct Secrets(BTreeMap<String, SecretSource>);

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, id: impl Into<String>, source: SecretSource) {
        self.0.insert(id.into(), source);
    }

    /// Parses `--secret id=ID[,src=FILE|,env=VAR]` (`source=` and `type=file|env` accepted; an
    /// id alone reads the environment variable of that name, then a file of that name).
    pub fn parse_flag(&mut self, flag: &str) -> Result<(), BuildError> {
        let mut id = None;
        let mut src = None;
        let mut envv = None;
        let mut typ = None;
        for part in flag.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                BuildError::Request(format!(
                    "--secret {flag:?}: expected id=ID,src=FILE or id=ID,env=VAR"
                ))
            })?;
            match k.trim() {
                "id" => id = Some(v.to_string()),
                "src" | "source" => src = Some(v.to_string()),
                "env" => envv = Some(v.to_string()),
                "type" => typ = Some(v.to_string()),
                other => {
                    return Err(BuildError::Request(format!(
                        "--secret {flag:?}: unknown key {other:?}"
                    )));
                }
            }
        }
        let id = id
            .or_else(|| envv.clone())
            .or_else(|| {
                src.as_ref().and_then(|s| {
                    std::path::Path::new(s)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
            })
            .ok_or_else(|| BuildError::Request(format!("--secret {flag:?}: missing id=")))?;
        let source = match (src, envv, typ.as_deref()) {
            (Some(s), _, Some("env")) => SecretSource::Env(s),
            (Some(s), _, _) => SecretSource::File(PathBuf::from(s)),
            (None, Some(e), _) => SecretSource::Env(e),
            (None, None, Some("file")) => SecretSource::File(PathBuf::from(&id)),
            (None, None, _) => {
                if std::env::var_os(&id).is_some() {
                    SecretSource::Env(id.clone())
                } else {
                    SecretSource::File(PathBuf::from(&id))
                }
            }
        };
        self.0.insert(id, source);
        Ok(())
    }

    /// Checks that every secret file given exists and is a readable file, so a mistyped
    /// `src=` fails before any step runs (as buildx does) rather than at the step using it.
    pub fn check_files(&self) -> Result<(), BuildError> {
        for (id, source) in &self.0 {
            if let SecretSource::File(path) = source {
                let readable = std::fs::metadata(path).and_then(|m| {
                    if m.is_dir() {
                        return Err(std::io::Error::other("is a directory"));
                    }
                    std::fs::File::open(path).map(drop)
                });
                if let Err(e) = readable {
                    return Err(BuildError::Secret {
                        id: id.clone(),
                        message: format!("cannot read {}: {e}", path.display()),
                    });
                }
            }
        }
        Ok(())
    }

    /// The value of secret `id`, `None` when it was not given.
    pub fn get(&self, id: &str) -> Result<Option<Vec<u8>>, BuildError> {
        match self.0.get(id) {
            None => Ok(None),
            Some(SecretSource::Value(v)) => Ok(Some(v.clone())),
            Some(SecretSource::Env(var)) => match std::env::var_os(var) {
                Some(v) => Ok(Some(
                    std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec(),
                )),
                None => Err(BuildError::Secret {
                    id: id.into(),
                    message: format!("environment variable {var} is not set"),
                }),
            },
            Some(SecretSource::File(p)) => {
                std::fs::read(p).map(Some).map_err(|e| BuildError::Secret {
                    id: id.into(),
                    message: format!("{}: {e}", p.display()),
                })
            }
        }
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Where the image goes besides the local store's build cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The local store, named by the request's tags (the default).
    Store,
    /// An OCI image layout directory.
    OciDir(PathBuf),
    /// A `docker load` archive.
    DockerArchive(PathBuf),
    /// The files of the image, in a directory.
    LocalDir(PathBuf),
    /// The files of the image, as one tar archive.
    Tar(PathBuf),
}

impl Output {
    /// Parses `-o type=oci,dest=DIR` (and `docker`, `local`, `tar`, `image`; a bare path means
    /// `type=local,dest=PATH`).
    pub fn parse(s: &str) -> Result<Output, BuildError> {
        if !s.contains('=') {
            return Ok(Output::LocalDir(PathBuf::from(s)));
        }
        let mut typ = None;
        let mut dest = None;
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("type", v)) => typ = Some(v.to_string()),
                Some(("dest", v)) => dest = Some(PathBuf::from(v)),
                Some(("name" | "push" | "compression", _)) => {}
                _ => {
                    return Err(BuildError::Request(format!(
                        "-o {s:?}: expected type=oci|docker|local|tar|image,dest=PATH"
                    )));
                }
            }
        }
        let need = |d: Option<PathBuf>, t: &str| {
            d.ok_or_else(|| BuildError::Request(format!("-o type={t} needs dest=PATH")))
        };
        match typ.as_deref() {
            Some("oci") => Ok(Output::OciDir(need(dest, "oci")?)),
            Some("docker") => Ok(Output::DockerArchive(need(dest, "docker")?)),
            Some("local") => Ok(Output::LocalDir(need(dest, "local")?)),
            Some("tar") => Ok(Output::Tar(need(dest, "tar")?)),
            Some("image") | Some("registry") => Ok(Output::Store),
            Some(other) => Err(BuildError::Request(format!(
                "-o {s:?}: unknown type {other:?} (expected oci, docker, local, tar or image)"
            ))),
            None => Err(BuildError::Request(format!(
                "-o {s:?}: no type= (expected type=oci, docker, local, tar or image)"
            ))),
        }
    }
}

/// A build, as the CLI and the pipeline engine describe it.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub context: ContextSource,
    pub dockerfile: DockerfileSource,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    /// The platforms to build (one image each; more than one makes an index). Empty: the host's.
    pub platforms: Vec<Platform>,
    /// Names in the local store (and push targets with `push`).
    pub tags: Vec<Reference>,
    /// `--label` values added to the image config.
    pub labels: BTreeMap<String, String>,
    pub secrets: Secrets,
    /// SSH agent sockets by id (`--ssh default=$SSH_AUTH_SOCK`).
    pub ssh: Vec<(String, PathBuf)>,
    pub no_cache: bool,
    /// Stages whose steps ignore the cache.
    pub no_cache_filter: Vec<String>,
    pub pull: PullPolicy,
    /// Timestamps in layers and config; `None`: `SOURCE_DATE_EPOCH`'s value if the caller set
    /// it, else the context's git commit time, else 0.
    pub source_date_epoch: Option<i64>,
    pub compression: drydock_oci::media_type::Compression,
    /// gzip 0-9 / zstd 1-19; `None`: gzip 1 (fast, as go-containerregistry and ko default to),
    /// zstd 3. Part of the cache key: the same level always gives the same bytes.
    pub compression_level: Option<i32>,
    pub outputs: Vec<Output>,
    pub push: bool,
    /// Allow `RUN --security=insecure`.
    pub allow_insecure: bool,
    pub progress: Progress,
    pub cancel: Cancel,
}

impl Default for BuildRequest {
    fn default() -> Self {
        Self {
            context: ContextSource::Dir(PathBuf::from(".")),
            dockerfile: DockerfileSource::default(),
            target: None,
            build_args: BTreeMap::new(),
            platforms: Vec::new(),
            tags: Vec::new(),
            labels: BTreeMap::new(),
            secrets: Secrets::new(),
            ssh: Vec::new(),
            no_cache: false,
            no_cache_filter: Vec::new(),
            pull: PullPolicy::Missing,
            source_date_epoch: None,
            compression: drydock_oci::media_type::Compression::Gzip,
            compression_level: None,
            outputs: vec![Output::Store],
            push: false,
            allow_insecure: false,
            progress: Progress::none(),
            cancel: Cancel::new(),
        }
    }
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The image: a manifest (one platform) or an index (several), in the local store.
    pub descriptor: Descriptor,
    /// The config digest (Docker's image ID) of the first platform's image.
    pub config_digest: Digest,
    /// The first platform's layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// Per platform: (platform, manifest descriptor, config digest).
    pub platforms: Vec<(Platform, Descriptor, Digest)>,
    /// Names set in the local store.
    pub tags: Vec<Reference>,
    /// References pushed, with the pushed digest.
    pub pushed: Vec<(Reference, Digest)>,
    /// Dockerfile check warnings, rendered.
    pub warnings: Vec<String>,
    pub stats: BuildStats,
    /// The epoch the image's timestamps were clamped to.
    pub source_date_epoch: i64,
}

/// How the steps went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStats {
    /// Steps (RUN, COPY, ADD, WORKDIR...) whose result came from the cache.
    pub cached: usize,
    /// Steps executed.
    pub executed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_secret_file_is_an_error_naming_the_id_and_the_path() {
        let mut s = Secrets::new();
        s.parse_flag("id=npmrc,src=/nonexistent/npmrc").unwrap();
        let e = s.check_files().unwrap_err().to_string();
        assert!(
            e.contains("\"npmrc\"") && e.contains("/nonexistent/npmrc"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut s = Secrets::new();
        s.parse_flag(&format!("id=d,src={}", dir.path().display()))
            .unwrap();
        assert!(
            s.check_files()
                .unwrap_err()
                .to_string()
                .contains("directory")
        );
        let f = dir.path().join("ok");
        std::fs::write(&f, "v").unwrap();
        let mut s = Secrets::new();
        s.parse_flag(&format!("id=ok,src={}", f.display())).unwrap();
        s.parse_flag("id=fromenv,env=DRYDOCK_TEST_UNSET_VARIABLE")
            .unwrap();
        s.check_files().unwrap();
    }

    #[test]
    fn an_unknown_or_missing_output_type_is_named_plainly() {
        let e = Output::parse("type=bogus").unwrap_err().to_string();
        assert!(
            e.contains("unknown type \"bogus\"") && !e.contains("Some("),
            "{e}"
        );
        let e = Output::parse("dest=out").unwrap_err().to_string();
        assert!(e.contains("no type="), "{e}");
    }
}
