//! `drydock serve`: webhooks, schedules, build chains, a run queue, a web UI with live logs,
//! a REST API, and the embedded registry at `/v2/`, in one process over SQLite.
//!
//! What it is for: turning triggers (forge webhooks, `on.schedule`, `on.image`, chains,
//! manual runs) into runs of the same pipeline engine `drydock run` uses, queueing them under
//! the server's job limit and each project's concurrency settings, and showing and
//! reporting what happened. What it is not: the pipeline engine (`drydock-pipeline`), the
//! registry (`drydock-registry-server`), or the database (`drydock-db`).
//!
//! - [`Server`] / [`ServerConfig`]: start, address, shutdown ([`http`]).
//! - [`app`]: shared state and the queue (enqueue, dispatch, execute, cancel, crash recovery).
//! - [`webhooks`]: signatures and payloads of GitHub, Gitea/Forgejo, GitLab and generic
//!   deliveries (pure); [`triggers`]: deliveries, manual runs, schedules and image triggers to
//!   runs; [`chains`]: build chains and Docker Hub-shaped chain webhooks.
//! - [`gitcache`]: bare mirrors per project and checkouts at an event's commit.
//! - [`sealbox`]: secrets at rest (XChaCha20-Poly1305, key file, rotation); [`auth`]: users,
//!   API tokens with scopes, sessions.
//! - [`statuses`]: commit statuses to GitHub, Gitea/Forgejo and GitLab.
//! - [`api`], [`ui`], [`openapi`], [`ansi`]: the JSON API, the HTML pages, the API's
//!   description, ANSI colours to HTML.
//!
//! Decisions:
//! - The job limit applies to runs started at once and to the jobs of each run (the engine's
//!   parallelism), so at most `job_limit` runs execute, each with up to `job_limit` jobs.
//! - Concurrency groups are per project: `none`, `ref` (one run per git ref at a time) or
//!   `project`; with cancel-in-progress a new run cancels the queued and running runs of its
//!   group, otherwise it waits for them.
//! - A delivery id is recorded before the run is queued; a replay answers 200 with
//!   `duplicate: true` and starts nothing. A delivery refused after the signature check
//!   (commit missing) is forgotten, so the forge's retry can run.
//! - Pull requests from forks run without secrets; a maintainer's approval (UI button or
//!   `POST /api/runs/{id}/approve`) makes a new run of the same commit with the secrets.
//! - Schedules remember their last firing in the database; after downtime a schedule whose
//!   next tick has passed fires once (the cause says how many ticks were missed).
//! - Re-running only the failed jobs keeps the jobs that passed (recorded as passed, "kept:
//!   passed in run N") with what they persisted and their outputs, through the engine's `run_keeping`; images
//!   built by kept jobs are not carried over (a job pushing them must run again).
//! - A run's source is written by one `git read-tree -u` into a repository borrowing the
//!   project mirror's objects (a `git clone --shared` cost ~5x more); commits known to be in a
//!   mirror are remembered, so a delivery for a known commit runs no git process.
//! - Live logs: the engine writes log lines to the database in batches; lines of running jobs
//!   are served from the engine's progress events until their batch lands (same sequence
//!   numbers), so a step that prints and then sleeps shows its line at once.

pub mod ansi;
pub mod api;
pub mod app;
pub mod auth;
mod bootstrap;
pub mod chains;
pub mod gitcache;
pub mod http;
pub mod openapi;
pub mod sealbox;
pub mod statuses;
pub mod triggers;
pub mod ui;
pub mod util;
pub mod webhooks;

pub use app::{App, ServerConfig, ServerError};
pub use http::Server;

/// Rotates the secrets key of a server's data directory while the server is stopped:
/// every sealed value is re-encrypted under a new key. Returns (values, new key id).
pub fn rotate_key(
    data_dir: &std::path::Path,
    database: Option<&std::path::Path>,
) -> Result<(usize, String), ServerError> {
    let db = drydock_db::Db::open(
        database
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| data_dir.join("drydock.db")),
    )?;
    let seal = sealbox::SealBox::open(&data_dir.join("secret.key"))?;
    let r = seal.rotate(|reseal| match db.reseal_all(reseal) {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(e.to_string()),
    })?;
    r.map(|n| (n, seal.key_id())).map_err(ServerError::Other)
}

/// Installs ring as the process's rustls provider (for HTTP clients); idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
