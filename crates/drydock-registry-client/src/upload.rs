//! Blob uploads: HEAD first, cross-repository mount, monolithic PUT for small blobs, chunked
//! PATCH with `Content-Range` for large ones, and resume from the registry's reported offset.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use drydock_oci::Digest;
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::RegistryError;
use crate::api::{pull_scope, push_scope};
use crate::client::{Client, Retry, backoff, http_error, scope};
use crate::progress::{BlobOutcome, Event};
use crate::registries::Endpoint;

/// Where the bytes of an upload come from. Every source can restart at any offset, which is
/// what resuming an upload needs.
#[derive(Debug)]
pub enum BlobSource {
    /// A file (a blob of the local store).
    File(PathBuf),
    /// A blob of another registry, streamed without touching the disk.
    Remote { client: Client, endpoint: Endpoint },
}

/// An open source positioned at some offset.
pub(crate) struct Reader<'a> {
    source: &'a BlobSource,
    digest: Digest,
    pos: u64,
    file: Option<tokio::fs::File>,
    stream: Option<futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>>,
    pending: Bytes,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(source: &'a BlobSource, digest: &Digest) -> Self {
        Self {
            source,
            digest: digest.clone(),
            pos: 0,
            file: None,
            stream: None,
            pending: Bytes::new(),
        }
    }

    /// Reads exactly `len` bytes starting at `offset`, reopening the source when it is elsewhere.
    pub(crate) async fn read_at(
        &mut self,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, RegistryError> {
        match self.source {
            BlobSource::File(path) => {
                let io = |e: std::io::Error| RegistryError::Io {
                    what: format!("read {}", path.display()),
                    source: e,
                };
                if self.file.is_none() {
                    self.file = Some(tokio::fs::File::open(path).await.map_err(io)?);
                    self.pos = 0;
                }
                let f = self.file.as_mut().expect("opened");
                if self.pos != offset {
                    f.seek(std::io::SeekFrom::Start(offset)).await.map_err(io)?;
                    self.pos = offset;
                }
                let mut buf = BytesMut::zeroed(len);
                f.read_exact(&mut buf).await.map_err(io)?;
                self.pos += len as u64;
                Ok(buf.freeze())
            }
            BlobSource::Remote { client, endpoint } => {
                if self.stream.is_none() || self.pos != offset {
                    let (resp, start) = client
                        .blob_stream(endpoint, &self.digest, offset, &pull_scope(endpoint))
                        .await?;
                    let mut stream = resp.bytes_stream().boxed();
                    // A server that ignored the range: skip to the offset.
                    let mut skip = offset - start;
                    let mut pending = Bytes::new();
                    while skip > 0 {
                        match stream.next().await {
                            Some(Ok(mut b)) => {
                                if (b.len() as u64) <= skip {
                                    skip -= b.len() as u64;
                                } else {
                                    pending = b.split_off(skip as usize);
                                    skip = 0;
                                }
                            }
                            Some(Err(e)) => return Err(remote_err(endpoint, &self.digest, e)),
                            None => return Err(short(endpoint, &self.digest)),
                        }
                    }
                    self.stream = Some(stream);
                    self.pending = pending;
                    self.pos = offset;
                }
                let mut out = BytesMut::with_capacity(len);
                while out.len() < len {
                    if self.pending.is_empty() {
                        match self.stream.as_mut().expect("opened").next().await {
                            Some(Ok(b)) => self.pending = b,
                            Some(Err(e)) => {
                                self.stream = None;
                                return Err(remote_err(endpoint, &self.digest, e));
                            }
                            None => {
                                self.stream = None;
                                return Err(short(endpoint, &self.digest));
                            }
                        }
                    }
                    let take = (len - out.len()).min(self.pending.len());
                    out.extend_from_slice(&self.pending.split_to(take));
                }
                self.pos += len as u64;
                Ok(out.freeze())
            }
        }
    }
}

fn remote_err(ep: &Endpoint, digest: &Digest, e: reqwest::Error) -> RegistryError {
    RegistryError::Connect {
        host: ep.host.clone(),
        message: format!("reading blob {digest}: {}", e.without_url()),
    }
}

fn short(ep: &Endpoint, digest: &Digest) -> RegistryError {
    RegistryError::Connect {
        host: ep.host.clone(),
        message: format!("blob {digest} ended early"),
    }
}

/// Chunk sizes for a host: known limits first, then the registry's `OCI-Chunk-Min-Length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPolicy {
    /// Blobs up to this size go in one PUT.
    pub monolithic_max: u64,
    pub chunk: u64,
}

/// The chunking rules for a host: GHCR takes at most 4 MiB per PATCH; ECR wants at least 5 MiB
/// (all but the last); a registry's `OCI-Chunk-Min-Length` raises the chunk size.
pub fn chunk_policy(host: &str, default_chunk: u64, min_length: Option<u64>) -> ChunkPolicy {
    let h = host.split(':').next().unwrap_or(host);
    let mut p = ChunkPolicy {
        monolithic_max: default_chunk,
        chunk: default_chunk,
    };
    if h == "ghcr.io" {
        p = ChunkPolicy {
            monolithic_max: 4 << 20,
            chunk: 4 << 20,
        };
    } else if h.ends_with(".amazonaws.com") && h.contains(".dkr.ecr.") {
        p.chunk = p.chunk.max(5 << 20);
    }
    if let Some(min) = min_length {
        p.chunk = p.chunk.max(min);
    }
    p
}

enum Started {
    Mounted,
    Session {
        location: Url,
        min_chunk: Option<u64>,
    },
}

impl Client {
    /// Starts an upload session, or mounts `digest` from `from` (another repository of the same
    /// registry) when given. A registry that cannot mount answers with a session (fallback).
    async fn start_upload(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        from: Option<&str>,
    ) -> Result<Started, RegistryError> {
        let op = format!("start upload of {digest} to {}", ep.repository);
        let mut scopes = push_scope(ep);
        if let Some(f) = from {
            scopes.push(scope(f, "pull"));
        }
        let resp = self
            .request(ep, &op, &scopes, Retry::Idempotent, |http, base| {
                let mut url = Client::v2(base, &format!("{}/blobs/uploads/", ep.repository));
                if let Some(f) = from {
                    url.query_pairs_mut()
                        .append_pair("mount", &digest.to_string())
                        .append_pair("from", f);
                }
                http.post(url).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED if from.is_some() => Ok(Started::Mounted),
            StatusCode::ACCEPTED | StatusCode::CREATED => {
                let location = self.location(ep, resp.headers(), &op).await?;
                let min_chunk = resp
                    .headers()
                    .get("oci-chunk-min-length")
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
                Ok(Started::Session {
                    location,
                    min_chunk,
                })
            }
            s => Err(http_error(&op, &ep.host, s, resp).await),
        }
    }

    async fn location(
        &self,
        ep: &Endpoint,
        headers: &HeaderMap,
        op: &str,
    ) -> Result<Url, RegistryError> {
        let loc = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RegistryError::protocol(op, "the registry sent no Location for the upload")
            })?;
        let host = self.host(ep).await?;
        host.base.join(loc).map_err(|e| {
            RegistryError::protocol(op, format!("invalid upload Location {loc:?}: {e}"))
        })
    }

    /// Uploads one blob unless the registry has it: HEAD, then mount (when `mount_from` names
    /// another repository of this registry), then the upload itself. Interrupted uploads resume
    /// from the offset the registry reports; a session the registry forgot starts over.
    pub async fn push_blob(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        size: u64,
        source: &BlobSource,
        mount_from: Option<&str>,
    ) -> Result<BlobOutcome, RegistryError> {
        if self.head_blob(ep, digest, true).await?.is_some() {
            return Ok(BlobOutcome::Exists);
        }
        let mount_from = mount_from.filter(|f| *f != ep.repository);
        let policy = self.options().retry.clone();
        let mut attempt = 0u32;
        let mut reader = Reader::new(source, digest);
        loop {
            attempt += 1;
            let from = if attempt == 1 { mount_from } else { None };
            let result: Result<BlobOutcome, RegistryError> = async {
                match self.start_upload(ep, digest, from).await? {
                    Started::Mounted => Ok(BlobOutcome::Mounted),
                    Started::Session {
                        location,
                        min_chunk,
                    } => {
                        if from.is_some() {
                            self.progress().emit(Event::Note(format!(
                                "{} could not mount {digest} from {}; uploading it",
                                ep.host,
                                from.unwrap_or_default()
                            )));
                        }
                        self.upload_session(ep, digest, size, &mut reader, location, min_chunk)
                            .await?;
                        Ok(if matches!(source, BlobSource::Remote { .. }) {
                            BlobOutcome::Copied
                        } else {
                            BlobOutcome::Uploaded
                        })
                    }
                }
            }
            .await;
            match result {
                Ok(o) => return Ok(o),
                // The blob may have landed even though the answer got lost (a final PUT whose
                // response never arrived): then there is nothing left to do.
                Err(ref e)
                    if !matches!(e, RegistryError::Cancelled)
                        && matches!(self.head_blob(ep, digest, true).await, Ok(Some(_))) =>
                {
                    return Ok(BlobOutcome::Uploaded);
                }
                Err(e) if e.is_transient() && attempt < policy.attempts => {
                    let wait = backoff(&policy, attempt);
                    self.progress().emit(Event::Retry {
                        what: format!("upload {digest}"),
                        attempt,
                        wait,
                        reason: e.to_string(),
                    });
                    self.sleep(wait).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn upload_session(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        size: u64,
        reader: &mut Reader<'_>,
        mut location: Url,
        min_chunk: Option<u64>,
    ) -> Result<(), RegistryError> {
        let policy = chunk_policy(&ep.host, self.options().chunk_size, min_chunk);
        let scopes = push_scope(ep);
        let op = format!("upload {digest} to {}", ep.repository);
        self.progress().emit(Event::BlobProgress {
            digest: digest.clone(),
            done: 0,
            size,
        });
        if size <= policy.monolithic_max {
            let body = reader.read_at(0, size as usize).await?;
            let url = with_digest(&location, digest);
            let resp = self
                .request(ep, &op, &scopes, Retry::Once, |http, _| {
                    http.put(url.clone())
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .header(header::CONTENT_LENGTH, size)
                        .body(body.clone())
                })
                .await?;
            if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
                return Err(http_error(&op, &ep.host, resp.status(), resp).await);
            }
            self.progress().emit(Event::BlobProgress {
                digest: digest.clone(),
                done: size,
                size,
            });
            return Ok(());
        }
        let mut offset = 0u64;
        let mut failures = 0u32;
        let retry = self.options().retry.clone();
        while offset < size {
            self.cancel().check()?;
            let len = policy.chunk.min(size - offset);
            let body = reader.read_at(offset, len as usize).await?;
            let end = offset + len - 1;
            let url = location.clone();
            let sent = self
                .request(ep, &op, &scopes, Retry::Once, |http, _| {
                    http.patch(url.clone())
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .header(header::CONTENT_RANGE, format!("{offset}-{end}"))
                        .header(header::CONTENT_LENGTH, len)
                        .body(body.clone())
                })
                .await;
            let failure = match sent {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED || resp.status().is_success() => {
                    location = self
                        .location(ep, resp.headers(), &op)
                        .await
                        .unwrap_or(location);
                    offset = end + 1;
                    self.progress().emit(Event::BlobProgress {
                        digest: digest.clone(),
                        done: offset,
                        size,
                    });
                    continue;
                }
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                    // The session is gone (BLOB_UPLOAD_UNKNOWN): start over from a new session.
                    return Err(RegistryError::UploadLost {
                        operation: op.clone(),
                        host: ep.host.clone(),
                    });
                }
                Ok(resp) => {
                    let s = resp.status();
                    let e = http_error(&op, &ep.host, s, resp).await;
                    if s != StatusCode::RANGE_NOT_SATISFIABLE && !e.is_transient() {
                        return Err(e);
                    }
                    e
                }
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e),
            };
            failures += 1;
            if failures >= retry.attempts {
                return Err(failure);
            }
            let wait = backoff(&retry, failures);
            self.progress().emit(Event::Retry {
                what: op.clone(),
                attempt: failures,
                wait,
                reason: failure.to_string(),
            });
            self.sleep(wait).await?;
            // Ask the registry how far it got, and continue from there.
            let (loc, next) = self.upload_status(ep, &location, &op).await?;
            location = loc;
            offset = next;
        }
        let url = with_digest(&location, digest);
        let resp = self
            .request(ep, &op, &scopes, Retry::Idempotent, |http, _| {
                http.put(url.clone()).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        if !resp.status().is_success() {
            return Err(http_error(&op, &ep.host, resp.status(), resp).await);
        }
        Ok(())
    }

    /// `GET` on an upload session: its (new) location and the next offset to send.
    async fn upload_status(
        &self,
        ep: &Endpoint,
        location: &Url,
        op: &str,
    ) -> Result<(Url, u64), RegistryError> {
        let resp = self
            .request(ep, op, &push_scope(ep), Retry::Idempotent, |http, _| {
                http.get(location.clone())
            })
            .await?;
        match resp.status() {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::ACCEPTED => {
                let next = resp
                    .headers()
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .map(|r| r.trim().trim_start_matches("bytes="))
                    .and_then(|r| r.split('-').nth(1))
                    .and_then(|e| e.parse::<u64>().ok())
                    .map_or(0, |end| end + 1);
                let loc = self
                    .location(ep, resp.headers(), op)
                    .await
                    .unwrap_or_else(|_| location.clone());
                Ok((loc, next))
            }
            StatusCode::NOT_FOUND => Err(RegistryError::UploadLost {
                operation: op.to_string(),
                host: ep.host.clone(),
            }),
            s => Err(http_error(op, &ep.host, s, resp).await),
        }
    }
}

fn with_digest(location: &Url, digest: &Digest) -> Url {
    let mut u = location.clone();
    u.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_rules_by_host() {
        let d = 32 << 20;
        assert_eq!(
            chunk_policy("ghcr.io", d, None),
            ChunkPolicy {
                monolithic_max: 4 << 20,
                chunk: 4 << 20
            }
        );
        assert_eq!(
            chunk_policy("123.dkr.ecr.eu-west-1.amazonaws.com", 1 << 20, None).chunk,
            5 << 20
        );
        assert_eq!(
            chunk_policy("localhost:5000", d, Some(64 << 20)).chunk,
            64 << 20
        );
        assert_eq!(
            chunk_policy("localhost:5000", d, None),
            ChunkPolicy {
                monolithic_max: d,
                chunk: d
            }
        );
    }
}
