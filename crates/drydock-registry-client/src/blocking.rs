//! A blocking facade for callers without a tokio runtime (the CLI, the builder): it owns a
//! small multi-threaded runtime (2 workers) and runs each call to completion.

use drydock_content::Store;
use drydock_oci::spec::Descriptor;
use drydock_oci::{Digest, Platform, Reference};

use crate::RegistryError;
use crate::api::Manifest;
use crate::client::{Client, ClientOptions};
use crate::credentials::Credential;
use crate::ops::{Pulled, PushOptions, Pushed, Resolved};

/// [`Client`] with blocking methods. Do not call from inside a tokio runtime.
#[derive(Debug)]
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl BlockingClient {
    pub fn new(opts: ClientOptions) -> Result<Self, RegistryError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("drydock-registry")
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Io {
                what: "start the network runtime".into(),
                source: e,
            })?;
        // reqwest clients must be built inside a runtime context.
        let client = {
            let _guard = runtime.enter();
            Client::new(opts)?
        };
        Ok(Self { runtime, client })
    }

    /// The async client, for callers that want to run their own futures on [`Self::block_on`].
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    pub fn push(
        &self,
        store: &Store,
        top: &Descriptor,
        targets: &[Reference],
        opts: &PushOptions,
    ) -> Result<Pushed, RegistryError> {
        self.block_on(self.client.push(store, top, targets, opts))
    }

    pub fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Pulled, RegistryError> {
        self.block_on(self.client.pull(store, reference, platform))
    }

    pub fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Resolved, RegistryError> {
        self.block_on(self.client.resolve(reference, platform))
    }

    pub fn copy(
        &self,
        src: &Reference,
        dst: &Reference,
        platform: Option<&Platform>,
    ) -> Result<Pushed, RegistryError> {
        self.block_on(self.client.copy(src, dst, platform))
    }

    pub fn fetch_manifest(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        self.block_on(self.client.fetch_manifest(reference))
    }

    pub fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<Vec<u8>, RegistryError> {
        self.block_on(self.client.fetch_blob(reference, digest))
    }

    pub fn tags(&self, repository: &Reference) -> Result<Vec<String>, RegistryError> {
        self.block_on(self.client.tags(repository))
    }

    pub fn delete(&self, reference: &Reference) -> Result<Digest, RegistryError> {
        self.block_on(self.client.delete(reference))
    }

    pub fn referrers(
        &self,
        reference: &Reference,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        self.block_on(self.client.list_referrers(reference, artifact_type))
    }

    pub fn check_login(
        &self,
        registry: &str,
        credential: &Credential,
    ) -> Result<(), RegistryError> {
        self.block_on(self.client.check_login(registry, credential))
    }
}
