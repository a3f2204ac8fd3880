//! Whole-image operations: push from the local store, pull into it, copy between registries,
//! resolve a reference to digests.

use std::collections::BTreeMap;

use drydock_content::graph::{self, Object};
use drydock_content::{Store, names};
use drydock_oci::spec::{Descriptor, ImageIndex, ImageManifest};
use drydock_oci::{Digest, Platform, Reference, media_type};
use futures_util::{StreamExt, TryStreamExt};

use crate::RegistryError;
use crate::api::Manifest;
use crate::client::Client;
use crate::progress::{BlobOutcome, Event};
use crate::registries::Endpoint;
use crate::upload::BlobSource;

/// Options for [`Client::push`].
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// When the image is an index whose manifests are not all in the store (a pulled base
    /// image), push only the manifest for this platform (default: the host's).
    pub platform: Option<Platform>,
    /// Repositories on the same registry that may already hold some blobs (the base image's):
    /// blobs are mounted from the first of them instead of uploaded.
    pub mount_from: Vec<Reference>,
}

/// What a push or copy wrote.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Digest of the top manifest or index.
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// Every reference written, with its digest.
    pub references: Vec<Reference>,
}

/// What a pull stored.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference as asked, pinned to the top digest.
    pub reference: Reference,
    /// What the name now points at in the local store (the index, when the image has one).
    pub top: Descriptor,
    /// The platform's image, loaded from the store.
    pub image: drydock_content::image::Image,
}

/// A reference resolved on the registry without downloading layers.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub top_digest: Digest,
    pub top_media_type: String,
    /// The manifest chosen for the platform (equal to the top for single-platform images).
    pub manifest_digest: Digest,
    pub manifest: Manifest,
}

/// One blob to move.
#[derive(Debug, Clone)]
struct Blob {
    digest: Digest,
    size: u64,
    what: &'static str,
}

/// The manifests of an image, children first, and the blobs they reference.
#[derive(Debug, Default)]
struct Plan {
    /// Non-top manifests, pushed by digest before the top.
    children: Vec<Manifest>,
    top: Option<Manifest>,
    blobs: BTreeMap<Digest, Blob>,
    /// (referrer manifest, subject digest) pairs.
    subjects: Vec<(Manifest, Digest)>,
}

impl Plan {
    fn add_manifest_blobs(&mut self, m: &ImageManifest) -> Result<(), RegistryError> {
        let cfg = m.config();
        let d = graph::digest_of(cfg)?;
        self.blobs.entry(d.clone()).or_insert(Blob {
            digest: d,
            size: cfg.size(),
            what: "config",
        });
        for l in m.layers() {
            let d = graph::digest_of(l)?;
            self.blobs.entry(d.clone()).or_insert(Blob {
                digest: d,
                size: l.size(),
                what: "layer",
            });
        }
        Ok(())
    }

    fn note_subject(&mut self, m: &Manifest) {
        #[derive(serde::Deserialize)]
        struct WithSubject {
            subject: Option<Descriptor>,
        }
        if let Ok(WithSubject { subject: Some(s) }) =
            serde_json::from_slice::<WithSubject>(&m.bytes)
            && let Ok(d) = graph::digest_of(&s)
        {
            self.subjects.push((m.clone(), d));
        }
    }
}

fn platform_of(d: &Descriptor) -> Option<Platform> {
    let p = d.platform().as_ref()?;
    Some(Platform::new(
        &p.os().to_string(),
        &p.architecture().to_string(),
        p.variant().as_deref(),
    ))
}

/// The manifest of `index` for `platform`, as the content store's resolver picks it.
pub(crate) fn select_platform<'a>(
    index: &'a ImageIndex,
    platform: &Platform,
    what: &str,
) -> Result<&'a Descriptor, RegistryError> {
    let candidates: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| media_type::is_manifest_like(d.media_type().as_ref()))
        .collect();
    candidates
        .iter()
        .find(|d| platform_of(d).is_some_and(|p| p.matches(platform)))
        .or_else(|| {
            (candidates.len() == 1 && candidates[0].platform().is_none()).then(|| &candidates[0])
        })
        .copied()
        .ok_or_else(|| RegistryError::NoMatchingPlatform {
            reference: what.to_string(),
            platform: platform.to_string(),
            available: candidates
                .iter()
                .filter_map(|d| platform_of(d).map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn store_manifest(store: &Store, d: &Descriptor) -> Result<Manifest, RegistryError> {
    let digest = graph::digest_of(d)?;
    let bytes = store.read_blob(&digest)?;
    Ok(Manifest {
        bytes,
        media_type: d.media_type().to_string(),
        digest,
    })
}

fn parse_object(m: &Manifest, what: &str) -> Result<Object, RegistryError> {
    graph::parse(&m.bytes, &m.media_type, what).map_err(|e| match e {
        drydock_content::ContentError::Schema1 {
            reference,
            media_type,
        } => RegistryError::Schema1 {
            reference,
            media_type,
        },
        other => other.into(),
    })
}

impl Client {
    /// Pushes an image of the local store (`top`: a manifest or index descriptor, as
    /// [`names::get`] returns) to every reference of `targets` (tags or digests, any
    /// repositories). Blobs the registry has are skipped after a HEAD; blobs go up
    /// `parallelism` at a time; manifests follow their blobs, the top one last.
    pub async fn push(
        &self,
        store: &Store,
        top: &Descriptor,
        targets: &[Reference],
        opts: &PushOptions,
    ) -> Result<Pushed, RegistryError> {
        let plan = self.plan_local(store, top, opts)?;
        let top_m = plan.top.clone().expect("plan has a top");
        // Group targets by endpoint so blobs go once per repository.
        let mut groups: BTreeMap<(String, String), (Endpoint, Vec<Reference>)> = BTreeMap::new();
        for t in targets {
            let ep = self.push_endpoint(t);
            groups
                .entry((ep.host.clone(), ep.repository.clone()))
                .or_insert_with(|| (ep, Vec::new()))
                .1
                .push(t.clone());
        }
        let mut written = Vec::new();
        for (ep, refs) in groups.values() {
            let mount = opts
                .mount_from
                .iter()
                .map(|r| self.push_endpoint(r))
                .find(|m| m.host == ep.host && m.repository != ep.repository)
                .map(|m| m.repository);
            let blobs: Vec<Blob> = plan.blobs.values().cloned().collect();
            self.transfer_blobs(&blobs, |b| {
                let source = BlobSource::File(store.blob_path(&b.digest));
                let ep = ep.clone();
                let mount = mount.clone();
                async move {
                    self.push_blob(&ep, &b.digest, b.size, &source, mount.as_deref())
                        .await
                }
            })
            .await?;
            written.extend(self.put_manifests(ep, &plan, refs).await?);
        }
        Ok(Pushed {
            digest: top_m.digest.clone(),
            media_type: top_m.media_type.clone(),
            size: top_m.bytes.len() as u64,
            references: written,
        })
    }

    async fn put_manifests(
        &self,
        ep: &Endpoint,
        plan: &Plan,
        refs: &[Reference],
    ) -> Result<Vec<Reference>, RegistryError> {
        let top = plan.top.as_ref().expect("plan has a top");
        let mut subject_processed = BTreeMap::new();
        for child in &plan.children {
            let r = self
                .put_manifest(ep, &child.digest.to_string(), child)
                .await?;
            subject_processed.insert(child.digest.clone(), r.subject_processed);
        }
        let mut written = Vec::new();
        for r in refs {
            let target = r
                .tag()
                .map(str::to_string)
                .unwrap_or_else(|| top.digest.to_string());
            if let Some(d) = r.digest()
                && r.tag().is_none()
                && *d != top.digest
            {
                return Err(RegistryError::DigestMismatch {
                    what: format!("push to {r}"),
                    expected: d.clone(),
                    actual: top.digest.clone(),
                });
            }
            let put = self.put_manifest(ep, &target, top).await?;
            subject_processed.insert(top.digest.clone(), put.subject_processed);
            written.push(r.with_digest(top.digest.clone()));
        }
        // Registries without the referrers API: keep the tag-schema index up to date.
        for (m, subject) in &plan.subjects {
            if subject_processed.get(&m.digest) == Some(&false) {
                let mut d = m.descriptor();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.bytes) {
                    let at = v
                        .get("artifactType")
                        .and_then(|a| a.as_str())
                        .or_else(|| v["config"]["mediaType"].as_str());
                    if let Some(at) = at {
                        d.set_artifact_type(Some(drydock_oci::spec::MediaType::from(at)));
                    }
                }
                self.add_referrer_fallback(ep, subject, d).await?;
            }
        }
        Ok(written)
    }

    /// Runs `f` for every blob, `parallelism` at a time, with progress events.
    async fn transfer_blobs<'a, F, Fut>(
        &'a self,
        blobs: &'a [Blob],
        f: F,
    ) -> Result<(), RegistryError>
    where
        F: Fn(&'a Blob) -> Fut,
        Fut: std::future::Future<Output = Result<BlobOutcome, RegistryError>> + 'a,
    {
        let n = self.options().parallelism.max(1);
        futures_util::stream::iter(blobs.iter().map(|b| {
            let fut = f(b);
            async move {
                self.progress().emit(Event::BlobStart {
                    digest: b.digest.clone(),
                    size: b.size,
                    what: b.what,
                });
                let outcome = fut.await?;
                self.progress().emit(Event::BlobDone {
                    digest: b.digest.clone(),
                    size: b.size,
                    outcome,
                });
                Ok::<_, RegistryError>(())
            }
        }))
        .buffer_unordered(n)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    fn plan_local(
        &self,
        store: &Store,
        top: &Descriptor,
        opts: &PushOptions,
    ) -> Result<Plan, RegistryError> {
        let mut plan = Plan::default();
        let top_m = store_manifest(store, top)?;
        match parse_object(&top_m, &top_m.digest.to_string())? {
            Object::Manifest(m) => {
                plan.add_manifest_blobs(&m)?;
                plan.note_subject(&top_m);
                plan.top = Some(top_m);
            }
            Object::Index(index) => {
                let mut children = Vec::new();
                let mut complete = true;
                for d in index.manifests() {
                    let digest = graph::digest_of(d)?;
                    if !store.contains(&digest) {
                        complete = false;
                        break;
                    }
                    let child = store_manifest(store, d)?;
                    match parse_object(&child, &digest.to_string())? {
                        Object::Manifest(m) => {
                            let missing =
                                graph::children(&Object::Manifest(m.clone()))
                                    .iter()
                                    .any(|b| {
                                        graph::digest_of(b)
                                            .map(|d| !store.contains(&d))
                                            .unwrap_or(true)
                                    });
                            if missing {
                                complete = false;
                                break;
                            }
                            plan.add_manifest_blobs(&m)?;
                        }
                        Object::Index(_) => {
                            return Err(RegistryError::protocol(
                                format!("index {}", top_m.digest),
                                "nested indexes are not supported for pushes",
                            ));
                        }
                    }
                    plan.note_subject(&child);
                    children.push(child);
                }
                if complete {
                    plan.children = children;
                    plan.top = Some(top_m);
                } else {
                    // A pulled multi-platform image holds one platform: push that manifest.
                    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
                    let image = drydock_content::image::resolve(
                        store,
                        top,
                        &platform,
                        &top_m.digest.to_string(),
                    )?;
                    let m = store_manifest(store, &image.manifest_descriptor)?;
                    self.progress().emit(Event::Note(format!(
                        "index {} is incomplete in the local store; pushing its {platform} manifest {} alone",
                        top_m.digest, m.digest
                    )));
                    let mut plan = Plan::default();
                    plan.add_manifest_blobs(&image.manifest)?;
                    plan.top = Some(m);
                    return self.check_present(store, plan);
                }
            }
        }
        self.check_present(store, plan)
    }

    fn check_present(&self, store: &Store, plan: Plan) -> Result<Plan, RegistryError> {
        for b in plan.blobs.values() {
            if !store.contains(&b.digest) {
                return Err(RegistryError::Content(
                    drydock_content::ContentError::BlobNotFound(b.digest.clone()),
                ));
            }
        }
        Ok(plan)
    }

    /// Fetches the top manifest from the first endpoint that has it (mirrors first).
    async fn fetch_top(
        &self,
        reference: &Reference,
    ) -> Result<(Endpoint, Manifest), RegistryError> {
        let mut last = None;
        let endpoints = self.pull_endpoints(reference);
        let n = endpoints.len();
        for (i, ep) in endpoints.into_iter().enumerate() {
            match self
                .get_manifest(&ep, &reference.manifest_ref(), &reference.familiar())
                .await
            {
                Ok(m) => return Ok((ep, m)),
                Err(e) if ep.mirror && i + 1 < n && !matches!(e, RegistryError::Cancelled) => {
                    self.progress().emit(Event::Note(format!(
                        "mirror {} failed for {}: {e}",
                        ep.host,
                        reference.familiar()
                    )));
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::NotFound {
            what: reference.familiar(),
            host: reference.registry().into(),
        }))
    }

    /// Resolves a reference on the registry to its top digest and the platform's manifest,
    /// without downloading blobs (for base-image digests in build plans).
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Resolved, RegistryError> {
        let (ep, top) = self.fetch_top(reference).await?;
        let mut current = top.clone();
        for _ in 0..8 {
            match parse_object(&current, &reference.familiar())? {
                Object::Manifest(_) => {
                    return Ok(Resolved {
                        top_digest: top.digest.clone(),
                        top_media_type: top.media_type.clone(),
                        manifest_digest: current.digest.clone(),
                        manifest: current,
                    });
                }
                Object::Index(index) => {
                    let d = select_platform(&index, platform, &reference.familiar())?;
                    current = self
                        .get_manifest(&ep, d.digest().as_ref(), &reference.familiar())
                        .await?;
                }
            }
        }
        Err(RegistryError::protocol(
            reference.familiar(),
            "indexes nested more than 8 deep",
        ))
    }

    /// Pulls `reference` for `platform` into the store and names it there (when it has a tag).
    /// Every blob is verified while it is written; nothing corrupt is ever stored.
    pub async fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Pulled, RegistryError> {
        let (ep, top) = self.fetch_top(reference).await?;
        let what = reference.familiar();
        self.progress().emit(Event::Manifest {
            reference: what.clone(),
            digest: top.digest.clone(),
            media_type: top.media_type.clone(),
        });
        let mut manifests = vec![top.clone()];
        let mut current = top.clone();
        let manifest = loop {
            match parse_object(&current, &what)? {
                Object::Manifest(m) => break m,
                Object::Index(index) => {
                    if manifests.len() > 8 {
                        return Err(RegistryError::protocol(
                            &what,
                            "indexes nested more than 8 deep",
                        ));
                    }
                    let d = select_platform(&index, platform, &what)?;
                    current = self.get_manifest(&ep, d.digest().as_ref(), &what).await?;
                    manifests.push(current.clone());
                }
            }
        };
        let mut plan = Plan::default();
        plan.add_manifest_blobs(&manifest)?;
        let blobs: Vec<Blob> = plan.blobs.into_values().collect();
        self.transfer_blobs(&blobs, |b| {
            let ep = ep.clone();
            async move {
                if store.contains(&b.digest) {
                    return Ok(BlobOutcome::Cached);
                }
                self.pull_blob(store, &ep, &b.digest, b.size).await?;
                Ok(BlobOutcome::Downloaded)
            }
        })
        .await?;
        // Manifests last, so a name never points at an image with missing blobs.
        for m in manifests.iter().rev() {
            store.put_bytes_expecting(&m.digest, &m.bytes)?;
        }
        let top_desc = top.descriptor();
        if reference.tag().is_some() {
            let named = if reference.digest().is_some() {
                reference
                    .repository_ref()
                    .with_tag(reference.tag().unwrap_or("latest"))
                    .unwrap_or_else(|_| reference.clone())
            } else {
                reference.clone()
            };
            names::set(store, &named, &top_desc)?;
        }
        let image = drydock_content::image::resolve(store, &top_desc, platform, &what)?;
        Ok(Pulled {
            reference: reference.with_digest(top.digest.clone()),
            top: top_desc,
            image,
        })
    }

    /// Copies an image between registries, streaming blobs from one to the other without
    /// touching the disk, and mounting them when both repositories are on the same registry.
    /// Every platform of an index is copied unless `platform` picks one.
    pub async fn copy(
        &self,
        src: &Reference,
        dst: &Reference,
        platform: Option<&Platform>,
    ) -> Result<Pushed, RegistryError> {
        let (src_ep, mut top) = self.fetch_top(src).await?;
        let what = src.familiar();
        let mut plan = Plan::default();
        loop {
            match parse_object(&top, &what)? {
                Object::Manifest(m) => {
                    plan.add_manifest_blobs(&m)?;
                    plan.note_subject(&top);
                    break;
                }
                Object::Index(index) => match platform {
                    Some(p) => {
                        let d = select_platform(&index, p, &what)?;
                        top = self
                            .get_manifest(&src_ep, d.digest().as_ref(), &what)
                            .await?;
                    }
                    None => {
                        for d in index.manifests() {
                            let child = self
                                .get_manifest(&src_ep, d.digest().as_ref(), &what)
                                .await?;
                            match parse_object(&child, &what)? {
                                Object::Manifest(m) => plan.add_manifest_blobs(&m)?,
                                Object::Index(_) => {
                                    return Err(RegistryError::protocol(
                                        &what,
                                        "nested indexes are not supported for copies",
                                    ));
                                }
                            }
                            plan.note_subject(&child);
                            plan.children.push(child);
                        }
                        break;
                    }
                },
            }
        }
        plan.top = Some(top.clone());
        let dst_ep = self.push_endpoint(dst);
        let mount = (src_ep.host == dst_ep.host && src_ep.repository != dst_ep.repository)
            .then(|| src_ep.repository.clone());
        let blobs: Vec<Blob> = plan.blobs.values().cloned().collect();
        self.transfer_blobs(&blobs, |b| {
            let source = BlobSource::Remote {
                client: self.clone(),
                endpoint: src_ep.clone(),
            };
            let dst_ep = dst_ep.clone();
            let mount = mount.clone();
            async move {
                self.push_blob(&dst_ep, &b.digest, b.size, &source, mount.as_deref())
                    .await
            }
        })
        .await?;
        let written = self
            .put_manifests(&dst_ep, &plan, std::slice::from_ref(dst))
            .await?;
        Ok(Pushed {
            digest: top.digest.clone(),
            media_type: top.media_type.clone(),
            size: top.bytes.len() as u64,
            references: written,
        })
    }

    /// The manifest (or index) bytes of a reference, as the registry serves them.
    pub async fn fetch_manifest(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        Ok(self.fetch_top(reference).await?.1)
    }

    /// A config blob (or any small blob) of a reference's repository, verified.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<Vec<u8>, RegistryError> {
        let ep = self
            .pull_endpoints(reference)
            .pop()
            .expect("at least the registry itself");
        self.get_blob_bytes(&ep, digest, 64 << 20).await
    }

    /// Tags of a repository.
    pub async fn tags(&self, repository: &Reference) -> Result<Vec<String>, RegistryError> {
        self.list_tags(&self.push_endpoint(repository)).await
    }

    /// Deletes a manifest by digest, or the manifest a tag points at.
    pub async fn delete(&self, reference: &Reference) -> Result<Digest, RegistryError> {
        let ep = self.push_endpoint(reference);
        let digest = match reference.digest() {
            Some(d) => d.clone(),
            None => {
                self.head_manifest(&ep, &reference.manifest_ref())
                    .await?
                    .ok_or_else(|| RegistryError::NotFound {
                        what: reference.familiar(),
                        host: ep.host.clone(),
                    })?
                    .0
            }
        };
        self.delete_manifest(&ep, &digest).await?;
        Ok(digest)
    }

    /// Referrers of a manifest (signatures, SBOMs), optionally of one artifact type.
    pub async fn list_referrers(
        &self,
        reference: &Reference,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let ep = self.push_endpoint(reference);
        let digest = match reference.digest() {
            Some(d) => d.clone(),
            None => self.fetch_top(reference).await?.1.digest,
        };
        self.referrers(&ep, &digest, artifact_type).await
    }
}
