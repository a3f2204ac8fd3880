//! What the caller tells the frontend, and what it hands back between the two phases.

use std::collections::BTreeMap;

use drydock_diagnostics::Span;
use drydock_dockerfile::Dockerignore;
use drydock_oci::{Digest, Platform, Reference};
use drydock_plan::ImageConfig;

/// Build inputs besides the Dockerfile text.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// How diagnostics and the source map name the Dockerfile (e.g. `Dockerfile`); not a path
    /// that the plan depends on.
    pub file_name: String,
    /// `--build-arg KEY=VALUE`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`; the last stage when `None`.
    pub target: Option<String>,
    /// `--platform` (TARGETPLATFORM).
    pub platform: Platform,
    /// The platform the build runs on (BUILDPLATFORM).
    pub build_platform: Platform,
    /// The context's `.dockerignore` (or `<Dockerfile>.dockerignore`).
    pub dockerignore: Dockerignore,
    /// Every file in the context (relative paths, `/`-separated), when the caller listed them;
    /// lets CopyIgnoredFile see through wildcards.
    pub context_files: Option<Vec<String>>,
    /// Plan even when some images are not resolved, using placeholder digests and empty
    /// configs (for `drydock build --check`). Such a plan must not be executed.
    pub allow_unresolved: bool,
}

impl BuildOptions {
    /// Options for `platform` built on the same platform.
    pub fn new(platform: Platform) -> Self {
        Self {
            file_name: "Dockerfile".into(),
            build_args: BTreeMap::new(),
            target: None,
            build_platform: platform.clone(),
            platform,
            dockerignore: Dockerignore::default(),
            context_files: None,
            allow_unresolved: false,
        }
    }
}

/// An image the plan needs: a stage's base or a `COPY --from`/`--mount from=` image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRequest {
    pub reference: Reference,
    pub platform: Platform,
    /// Where the Dockerfile asks for it.
    pub span: Span,
    /// 1-based line.
    pub line: usize,
}

/// What the caller found for an [`ImageRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The manifest digest (for a multi-platform index: the chosen platform's manifest).
    pub digest: Digest,
    pub config: ImageConfig,
}

/// Resolved images by (reference, platform).
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    map: BTreeMap<(String, String), ResolvedImage>,
}

impl Resolved {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, reference: &Reference, platform: &Platform, image: ResolvedImage) {
        self.map
            .insert((reference.to_string(), platform.to_string()), image);
    }

    pub fn get(&self, reference: &Reference, platform: &Platform) -> Option<&ResolvedImage> {
        self.map.get(&(reference.to_string(), platform.to_string()))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
