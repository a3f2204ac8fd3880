//! The distribution API, one request kind per function: manifests, blobs, tags, referrers.
//! Every function takes the [`Endpoint`] (host + repository path) it talks to.

use std::io::Write;

use drydock_content::Store;
use drydock_oci::spec::{Descriptor, ImageIndex};
use drydock_oci::{Digest, media_type};
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap};
use reqwest::{Response, StatusCode, Url};

use crate::RegistryError;
use crate::client::{Client, Retry, http_error, read_limited, scope};
use crate::progress::Event;
use crate::registries::Endpoint;

/// Manifests and indexes larger than this are refused (the spec suggests 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;

/// A manifest or index as the registry stored it: the exact bytes matter (they are hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl Manifest {
    pub fn from_bytes(bytes: Vec<u8>, media_type: &str) -> Self {
        let digest = Digest::sha256(&bytes);
        Self {
            bytes,
            media_type: media_type.to_string(),
            digest,
        }
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            drydock_oci::spec::MediaType::from(self.media_type.as_str()),
            self.bytes.len() as u64,
            drydock_oci::spec::Digest::from(&self.digest),
        )
    }

    pub fn is_index(&self) -> bool {
        media_type::kind(&self.media_type) == media_type::Kind::Index
    }
}

/// What a manifest PUT told us.
#[derive(Debug, Clone)]
pub struct PutManifest {
    pub digest: Digest,
    /// The registry processed the `subject` field (`OCI-Subject` header): no tag-schema fallback
    /// is needed for referrers.
    pub subject_processed: bool,
}

pub(crate) fn pull_scope(ep: &Endpoint) -> Vec<String> {
    vec![scope(&ep.repository, "pull")]
}

pub(crate) fn push_scope(ep: &Endpoint) -> Vec<String> {
    vec![scope(&ep.repository, "pull,push")]
}

fn digest_header(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| Digest::parse(s.trim()).ok())
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
}

impl Client {
    /// GETs a manifest or index by tag or digest. The bytes are verified against the digest
    /// when the reference is pinned (and against `Docker-Content-Digest` otherwise); Docker
    /// schema1 is refused.
    pub async fn get_manifest(
        &self,
        ep: &Endpoint,
        reference: &str,
        what: &str,
    ) -> Result<Manifest, RegistryError> {
        let pinned = Digest::parse(reference).ok();
        let accept = media_type::MANIFEST_ACCEPT.join(", ");
        let op = format!("get manifest {what}");
        let resp = self
            .request(ep, &op, &pull_scope(ep), Retry::Idempotent, |http, base| {
                http.get(Client::v2(
                    base,
                    &format!("{}/manifests/{reference}", ep.repository),
                ))
                .header(header::ACCEPT, accept.clone())
            })
            .await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    what: format!("manifest {what}"),
                    host: ep.host.clone(),
                });
            }
            s => return Err(http_error(&op, &ep.host, s, resp).await),
        }
        let header_digest = digest_header(resp.headers());
        let declared = content_type(resp.headers());
        let bytes = read_limited(resp, MAX_MANIFEST).await?;
        let sniffed = drydock_content::graph::sniff_media_type(&bytes);
        let mt = match declared.as_deref() {
            Some(m) if media_type::kind(m) != media_type::Kind::Other => m.to_string(),
            _ => sniffed.unwrap_or(media_type::OCI_MANIFEST).to_string(),
        };
        if media_type::kind(&mt) == media_type::Kind::Schema1
            || sniffed == Some(media_type::DOCKER_SCHEMA1)
        {
            return Err(RegistryError::Schema1 {
                reference: what.to_string(),
                media_type: mt,
            });
        }
        let expected = pinned.or(header_digest);
        let digest = match expected {
            Some(e) => {
                let actual = Digest::compute(e.algorithm(), &bytes);
                if actual != e {
                    return Err(RegistryError::DigestMismatch {
                        what: format!("manifest {what}"),
                        expected: e,
                        actual,
                    });
                }
                if e.algorithm() == drydock_oci::Algorithm::Sha256 {
                    e
                } else {
                    Digest::sha256(&bytes)
                }
            }
            None => Digest::sha256(&bytes),
        };
        Ok(Manifest {
            bytes,
            media_type: mt,
            digest,
        })
    }

    /// HEADs a manifest: its digest, media type and size, or `None` when absent.
    pub async fn head_manifest(
        &self,
        ep: &Endpoint,
        reference: &str,
    ) -> Result<Option<(Digest, String, u64)>, RegistryError> {
        let accept = media_type::MANIFEST_ACCEPT.join(", ");
        let op = format!("head manifest {}:{reference}", ep.repository);
        let resp = self
            .request(ep, &op, &pull_scope(ep), Retry::Idempotent, |http, base| {
                http.head(Client::v2(
                    base,
                    &format!("{}/manifests/{reference}", ep.repository),
                ))
                .header(header::ACCEPT, accept.clone())
            })
            .await?;
        match resp.status() {
            StatusCode::OK => {
                let d = digest_header(resp.headers());
                let mt = content_type(resp.headers()).unwrap_or_default();
                let size = resp
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                match (d, size) {
                    (Some(d), Some(size)) => Ok(Some((d, mt, size))),
                    // No digest header: GET it to know.
                    _ => {
                        let m = self.get_manifest(ep, reference, &op).await?;
                        let len = m.bytes.len() as u64;
                        Ok(Some((m.digest, m.media_type, len)))
                    }
                }
            }
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(http_error(&op, &ep.host, s, resp).await),
        }
    }

    /// PUTs a manifest under a tag or its digest.
    pub async fn put_manifest(
        &self,
        ep: &Endpoint,
        reference: &str,
        m: &Manifest,
    ) -> Result<PutManifest, RegistryError> {
        let op = format!("put manifest {}:{reference}", ep.repository);
        let body = bytes::Bytes::from(m.bytes.clone());
        let resp = self
            .request(ep, &op, &push_scope(ep), Retry::Idempotent, |http, base| {
                http.put(Client::v2(
                    base,
                    &format!("{}/manifests/{reference}", ep.repository),
                ))
                .header(header::CONTENT_TYPE, m.media_type.clone())
                .body(body.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(http_error(&op, &ep.host, resp.status(), resp).await);
        }
        if let Some(d) = digest_header(resp.headers())
            && d.algorithm() == m.digest.algorithm()
            && d != m.digest
        {
            return Err(RegistryError::DigestMismatch {
                what: op,
                expected: m.digest.clone(),
                actual: d,
            });
        }
        let subject_processed = resp.headers().contains_key("oci-subject");
        self.progress().emit(Event::Manifest {
            reference: format!("{}/{}:{reference}", ep.host, ep.repository),
            digest: m.digest.clone(),
            media_type: m.media_type.clone(),
        });
        Ok(PutManifest {
            digest: m.digest.clone(),
            subject_processed,
        })
    }

    pub async fn delete_manifest(
        &self,
        ep: &Endpoint,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        self.delete_object(ep, "manifest", digest).await
    }

    /// `DELETE /v2/<repository>/<kind>s/<digest>` (`kind` is `manifest` or `blob`); a 404 is
    /// [`RegistryError::NotFound`].
    async fn delete_object(
        &self,
        ep: &Endpoint,
        kind: &str,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let op = format!("delete {kind} {}@{digest}", ep.repository);
        let scopes = vec![scope(&ep.repository, "delete")];
        let resp = self
            .request(ep, &op, &scopes, Retry::Idempotent, |http, base| {
                http.delete(Client::v2(
                    base,
                    &format!("{}/{kind}s/{digest}", ep.repository),
                ))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
                what: op,
                host: ep.host.clone(),
            }),
            s => Err(http_error(&op, &ep.host, s, resp).await),
        }
    }

    /// HEADs a blob: its size when the registry has it.
    pub async fn head_blob(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        push: bool,
    ) -> Result<Option<u64>, RegistryError> {
        let op = format!("head blob {}@{digest}", ep.repository);
        let scopes = if push { push_scope(ep) } else { pull_scope(ep) };
        let resp = self
            .request(ep, &op, &scopes, Retry::Idempotent, |http, base| {
                http.head(Client::v2(
                    base,
                    &format!("{}/blobs/{digest}", ep.repository),
                ))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(http_error(&op, &ep.host, s, resp).await),
        }
    }

    /// Starts a blob GET at `offset` (a `Range` request when non-zero). Returns the response and
    /// the offset it actually starts at (0 when the server ignored the range).
    pub(crate) async fn blob_stream(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        offset: u64,
        scopes: &[String],
    ) -> Result<(Response, u64), RegistryError> {
        let op = format!("get blob {}@{digest}", ep.repository);
        let resp = self
            .request(ep, &op, scopes, Retry::Idempotent, |http, base| {
                let rb = http.get(Client::v2(
                    base,
                    &format!("{}/blobs/{digest}", ep.repository),
                ));
                if offset > 0 {
                    rb.header(header::RANGE, format!("bytes={offset}-"))
                } else {
                    rb
                }
            })
            .await?;
        match resp.status() {
            StatusCode::OK => Ok((resp, 0)),
            StatusCode::PARTIAL_CONTENT => {
                let start = resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                match start {
                    Some(s) if s == offset => Ok((resp, offset)),
                    _ => Err(RegistryError::protocol(
                        op,
                        "the registry answered a range request with another range",
                    )),
                }
            }
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
                what: format!("blob {digest} in {}", ep.repository),
                host: ep.host.clone(),
            }),
            s => Err(http_error(&op, &ep.host, s, resp).await),
        }
    }

    /// Downloads a blob into the store, verified on the fly: the bytes are hashed as they are
    /// written, and a digest or size mismatch discards them (nothing is stored). Interrupted
    /// downloads continue with `Range` requests, also across processes (the partial file is
    /// kept in the store's `ingest/`).
    pub async fn pull_blob(
        &self,
        store: &Store,
        ep: &Endpoint,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        if store.contains(digest) {
            return Ok(());
        }
        let mut resumed = false;
        match self
            .pull_blob_once(store, ep, digest, size, &mut resumed)
            .await
        {
            // Bytes kept from an earlier, interrupted attempt may themselves have been bad (that
            // attempt never got to verify them): they are gone now, so start over once.
            Err(RegistryError::DigestMismatch { .. }) if resumed => {
                self.progress().emit(Event::Note(format!(
                    "the partial download of {digest} kept from an earlier attempt was corrupt; downloading it again"
                )));
                self.pull_blob_once(store, ep, digest, size, &mut resumed)
                    .await
            }
            other => other,
        }
    }

    async fn pull_blob_once(
        &self,
        store: &Store,
        ep: &Endpoint,
        digest: &Digest,
        size: u64,
        resumed: &mut bool,
    ) -> Result<(), RegistryError> {
        let scopes = pull_scope(ep);
        let mut writer = store.writer_resumable(digest, Some(size))?;
        *resumed = writer.offset() > 0;
        let policy = self.options().retry.clone();
        let mut failures = 0u32;
        loop {
            self.cancel().check()?;
            let offset = writer.offset();
            if offset >= size {
                break;
            }
            let (resp, start) = self.blob_stream(ep, digest, offset, &scopes).await?;
            if start != offset {
                writer.reset()?;
            }
            let mut stream = resp.bytes_stream();
            let mut failed = None;
            let mut last_report = writer.offset();
            loop {
                let next = tokio::select! {
                    n = stream.next() => n,
                    _ = self.cancel().cancelled() => return Err(RegistryError::Cancelled),
                };
                match next {
                    None => break,
                    Some(Ok(chunk)) => {
                        if let Err(e) = writer.write_all(&chunk) {
                            // More bytes than the descriptor says: corrupt, never resume from it.
                            let _ = writer.reset();
                            return Err(RegistryError::protocol(
                                format!("blob {digest}"),
                                e.to_string(),
                            ));
                        }
                        let done = writer.offset();
                        if done - last_report >= 1 << 20 || done == size {
                            last_report = done;
                            self.progress().emit(Event::BlobProgress {
                                digest: digest.clone(),
                                done,
                                size,
                            });
                        }
                    }
                    Some(Err(e)) => {
                        failed = Some(e.without_url().to_string());
                        break;
                    }
                }
            }
            if writer.offset() < size {
                failures += 1;
                let reason = failed.unwrap_or_else(|| "the connection closed early".into());
                if failures >= policy.attempts {
                    return Err(RegistryError::Connect {
                        host: ep.host.clone(),
                        message: format!("download of {digest}: {reason}"),
                    });
                }
                let wait = crate::client::backoff(&policy, failures);
                self.progress().emit(Event::Retry {
                    what: format!("download {digest}"),
                    attempt: failures,
                    wait,
                    reason,
                });
                self.sleep(wait).await?;
            }
        }
        let d = digest.clone();
        tokio::task::spawn_blocking(move || writer.commit())
            .await
            .map_err(|e| RegistryError::protocol(format!("blob {d}"), e.to_string()))?
            .map_err(|e| match e {
                drydock_content::ContentError::DigestMismatch {
                    expected, actual, ..
                } => RegistryError::DigestMismatch {
                    what: format!("blob {expected} from {}", ep.host),
                    expected,
                    actual,
                },
                other => other.into(),
            })?;
        Ok(())
    }

    /// GETs a small blob (a config) into memory, verified.
    pub async fn get_blob_bytes(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        max: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let (resp, _) = self.blob_stream(ep, digest, 0, &pull_scope(ep)).await?;
        let bytes = read_limited(resp, max).await?;
        let actual = Digest::compute(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("blob {digest}"),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub async fn delete_blob(&self, ep: &Endpoint, digest: &Digest) -> Result<(), RegistryError> {
        self.delete_object(ep, "blob", digest).await
    }

    /// Every tag of the repository, following `Link: <…>; rel="next"` pages.
    pub async fn list_tags(&self, ep: &Endpoint) -> Result<Vec<String>, RegistryError> {
        let op = format!("list tags of {}", ep.repository);
        let mut tags = Vec::new();
        let mut next: Option<String> = Some(format!(
            "v2/{}/tags/list?n={}",
            ep.repository,
            self.options().tag_page_size.max(1)
        ));
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(RegistryError::protocol(op, "more than 10000 pages"));
            }
            let resp = self
                .request(ep, &op, &pull_scope(ep), Retry::Idempotent, |http, base| {
                    http.get(
                        base.join(path.trim_start_matches('/'))
                            .unwrap_or_else(|_| base.clone()),
                    )
                })
                .await?;
            match resp.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound {
                        what: format!("repository {}", ep.repository),
                        host: ep.host.clone(),
                    });
                }
                s => return Err(http_error(&op, &ep.host, s, resp).await),
            }
            next = next_link(resp.headers());
            let bytes = read_limited(resp, 16 << 20).await?;
            #[derive(serde::Deserialize)]
            struct TagList {
                tags: Option<Vec<String>>,
            }
            let page: TagList = serde_json::from_slice(&bytes)
                .map_err(|e| RegistryError::protocol(&op, e.to_string()))?;
            tags.extend(page.tags.unwrap_or_default());
        }
        Ok(tags)
    }

    /// The referrers of a manifest: the referrers API, else the `sha256-<hex>` tag index.
    pub async fn referrers(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let op = format!("list referrers of {}@{digest}", ep.repository);
        let resp = self
            .request(ep, &op, &pull_scope(ep), Retry::Idempotent, |http, base| {
                let mut url = Client::v2(base, &format!("{}/referrers/{digest}", ep.repository));
                if let Some(t) = artifact_type {
                    url.query_pairs_mut().append_pair("artifactType", t);
                }
                http.get(url).header(header::ACCEPT, media_type::OCI_INDEX)
            })
            .await?;
        let index: ImageIndex = match resp.status() {
            StatusCode::OK => {
                let bytes = read_limited(resp, MAX_MANIFEST).await?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| RegistryError::protocol(&op, e.to_string()))?
            }
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                match self.referrers_tag_index(ep, digest).await? {
                    Some((_, index)) => index,
                    None => return Ok(Vec::new()),
                }
            }
            s => return Err(http_error(&op, &ep.host, s, resp).await),
        };
        Ok(index
            .manifests()
            .iter()
            .filter(|d| {
                artifact_type.is_none_or(|t| {
                    d.artifact_type().as_ref().map(|a| a.to_string()).as_deref() == Some(t)
                })
            })
            .cloned()
            .collect())
    }

    /// The tag-schema fallback index for `digest` (`sha256-<hex>`), if any.
    pub(crate) async fn referrers_tag_index(
        &self,
        ep: &Endpoint,
        digest: &Digest,
    ) -> Result<Option<(Manifest, ImageIndex)>, RegistryError> {
        let tag = referrers_tag(digest);
        match self
            .get_manifest(ep, &tag, &format!("{}:{tag}", ep.repository))
            .await
        {
            Ok(m) => {
                let index = serde_json::from_slice(&m.bytes).map_err(|e| {
                    RegistryError::protocol(format!("referrers index {tag}"), e.to_string())
                })?;
                Ok(Some((m, index)))
            }
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds `referrer` to the tag-schema index of `subject` (for registries without the
    /// referrers API), keeping what is there.
    pub async fn add_referrer_fallback(
        &self,
        ep: &Endpoint,
        subject: &Digest,
        referrer: Descriptor,
    ) -> Result<(), RegistryError> {
        let mut manifests = match self.referrers_tag_index(ep, subject).await? {
            Some((_, index)) => index.manifests().clone(),
            None => Vec::new(),
        };
        if manifests.iter().any(|d| d.digest() == referrer.digest()) {
            return Ok(());
        }
        manifests.push(referrer);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": manifests,
        });
        let bytes = drydock_oci::canonical::to_vec(&index)
            .map_err(|e| RegistryError::protocol("referrers index", e.to_string()))?;
        let m = Manifest::from_bytes(bytes, media_type::OCI_INDEX);
        self.put_manifest(ep, &referrers_tag(subject), &m).await?;
        Ok(())
    }
}

/// The tag-schema name of a subject's referrers index: `<alg>-<hex>`.
pub fn referrers_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.hex())
}

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(header::LINK) {
        let v = v.to_str().ok()?;
        for part in v.split(',') {
            let part = part.trim();
            let (target, params) = part.split_once(';').unwrap_or((part, ""));
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            if params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            }) {
                return Some(match Url::parse(target) {
                    // Absolute link: keep path and query only (same host).
                    Ok(u) => format!(
                        "{}{}",
                        u.path(),
                        u.query().map(|q| format!("?{q}")).unwrap_or_default()
                    ),
                    Err(_) => target.to_string(),
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn link_header_next_page() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            HeaderValue::from_static(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/a/tags/list?n=2&last=b"));
        h.insert(
            header::LINK,
            HeaderValue::from_static(r#"<https://r.example/v2/a/tags/list?last=c>; rel=next"#),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/a/tags/list?last=c"));
        h.insert(
            header::LINK,
            HeaderValue::from_static(r#"</x>; rel="prev""#),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn referrers_tag_schema() {
        let d = Digest::sha256(b"x");
        assert_eq!(referrers_tag(&d), format!("sha256-{}", d.hex()));
    }
}
