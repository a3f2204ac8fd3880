//! The HTTP edge: one router with the UI, the API, the webhooks and the embedded registry at
//! `/v2/`; [`Server`] binds it (plain HTTP, or TLS with rustls and ring) and starts the
//! dispatcher, the scheduler, the image watchers and the status sender.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;

use crate::app::{App, ServerConfig, ServerError};
use crate::{api, ui};

/// Every API route as (method, path in OpenAPI form): the router and the OpenAPI test read it.
pub const API_ROUTES: &[(&str, &str)] = &[
    ("get", "/api/openapi.json"),
    ("get", "/api/whoami"),
    ("get", "/api/projects"),
    ("post", "/api/projects"),
    ("get", "/api/projects/{name}"),
    ("patch", "/api/projects/{name}"),
    ("delete", "/api/projects/{name}"),
    ("get", "/api/projects/{name}/secrets"),
    ("put", "/api/projects/{name}/secrets/{key}"),
    ("delete", "/api/projects/{name}/secrets/{key}"),
    ("post", "/api/projects/{name}/runs"),
    ("get", "/api/runs"),
    ("get", "/api/runs/{id}"),
    ("post", "/api/runs/{id}/cancel"),
    ("post", "/api/runs/{id}/rerun"),
    ("post", "/api/runs/{id}/approve"),
    ("get", "/api/runs/{id}/jobs/{job}/logs"),
    ("get", "/api/runs/{id}/jobs/{job}/events"),
    ("get", "/api/chains"),
    ("post", "/api/chains"),
    ("get", "/api/chains/{name}"),
    ("delete", "/api/chains/{name}"),
    ("post", "/api/chains/{name}/start"),
    ("get", "/api/registry/repositories"),
    ("get", "/api/registry/tags"),
    ("get", "/api/users"),
    ("post", "/api/users"),
    ("get", "/api/tokens"),
    ("post", "/api/tokens"),
    ("delete", "/api/tokens/{id}"),
    ("post", "/api/secrets/rotate"),
    ("post", "/hooks/{project}/{forge}"),
    ("post", "/hooks/chains/{name}/dockerhub"),
];

async fn openapi() -> axum::Json<serde_json::Value> {
    axum::Json(crate::openapi::spec())
}

async fn healthz() -> &'static str {
    "ok\n"
}

pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/whoami", get(api::whoami))
        .route(
            "/api/projects",
            get(api::list_projects).post(api::create_project),
        )
        .route(
            "/api/projects/{name}",
            get(api::show_project)
                .patch(api::update_project)
                .delete(api::delete_project),
        )
        .route("/api/projects/{name}/secrets", get(api::list_secrets))
        .route(
            "/api/projects/{name}/secrets/{key}",
            axum::routing::put(api::put_secret).delete(api::delete_secret),
        )
        .route("/api/projects/{name}/runs", post(api::trigger_run))
        .route("/api/runs", get(api::list_runs))
        .route("/api/runs/{id}", get(api::show_run))
        .route("/api/runs/{id}/cancel", post(api::cancel_run))
        .route("/api/runs/{id}/rerun", post(api::rerun_run))
        .route("/api/runs/{id}/approve", post(api::approve_run))
        .route("/api/runs/{id}/jobs/{job}/logs", get(api::job_logs))
        .route("/api/runs/{id}/jobs/{job}/events", get(api::job_events))
        .route("/api/chains", get(api::list_chains).post(api::create_chain))
        .route(
            "/api/chains/{name}",
            get(api::show_chain).delete(api::delete_chain),
        )
        .route("/api/chains/{name}/start", post(api::start_chain))
        .route(
            "/api/registry/repositories",
            get(api::registry_repositories),
        )
        .route("/api/registry/tags", get(api::registry_tags))
        .route("/api/users", get(api::list_users).post(api::create_user))
        .route("/api/tokens", get(api::list_tokens).post(api::create_token))
        .route("/api/tokens/{id}", delete(api::delete_token))
        .route("/api/secrets/rotate", post(api::rotate_key))
        .route("/hooks/chains/{name}/dockerhub", post(api::hub_hook))
        .route("/hooks/{project}/{forge}", post(api::hook));
    let ui = Router::new()
        .route("/", get(ui::index))
        .route("/login", get(ui::login_page).post(ui::login))
        .route("/logout", post(ui::logout))
        .route("/projects", get(ui::projects))
        .route("/projects/{name}", get(ui::project))
        .route("/projects/{name}/run", post(ui::ui_trigger))
        .route("/runs/{id}", get(ui::run_page))
        .route("/runs/{id}/cancel", post(ui::ui_cancel))
        .route("/runs/{id}/rerun", post(ui::ui_rerun))
        .route("/runs/{id}/rerun-failed", post(ui::ui_rerun_failed))
        .route("/runs/{id}/approve", post(ui::ui_approve))
        .route("/runs/{id}/jobs/{job}/log", get(ui::job_log_page))
        .route("/chains", get(ui::chains_page))
        .route("/chains/{name}/start", post(ui::ui_chain_start))
        .route("/registry", get(ui::registry_page))
        .route("/healthz", get(healthz));
    api.merge(ui)
        .with_state(app.clone())
        .merge(app.registry.router())
}

/// A running server.
pub struct Server {
    app: Arc<App>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    serve: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// Opens the state, recovers from a crash, and starts serving. Call inside a tokio
    /// runtime (multi-threaded).
    pub async fn start(mut cfg: ServerConfig) -> Result<Server, ServerError> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        cfg.listen = addr;
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        let public_url = cfg
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"));
        let rt = tokio::runtime::Handle::current();
        let c2 = cfg.clone();
        let app = tokio::task::spawn_blocking(move || App::new(c2, public_url, rt))
            .await
            .map_err(|e| ServerError::Other(e.to_string()))??;
        let app = Arc::new(app);
        crate::bootstrap::first_admin(&app)?;
        let a2 = app.clone();
        let recovered = tokio::task::spawn_blocking(move || a2.recover())
            .await
            .map_err(|e| ServerError::Other(e.to_string()))??;
        for (old, new) in &recovered {
            tracing::warn!(run = old, requeued_as = ?new, "run interrupted by a restart");
        }
        app.registry.start_background();
        let mut tasks = Vec::new();
        if let Some(rx) = app
            .status_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            tasks.push(tokio::spawn(crate::statuses::sender(app.http.clone(), rx)));
        }
        tasks.push(tokio::spawn(app.clone().dispatcher()));
        tasks.push(tokio::spawn(scheduler(app.clone())));
        tasks.push(tokio::spawn(registry_events(app.clone())));
        upstream_poller(app.clone());

        let router = router(app.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let serve = match cfg.tls.clone() {
            None => tokio::spawn(async move {
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }),
            Some(files) => {
                let tls = drydock_registry_server::server::tls_config(&files)?;
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
                let tls_listener =
                    drydock_registry_server::server::TlsListener::spawn(listener, acceptor)?;
                tokio::spawn(async move {
                    axum::serve(tls_listener, router.into_make_service())
                        .with_graceful_shutdown(shutdown)
                        .await
                })
            }
        };
        Ok(Server {
            app,
            addr,
            shutdown: Some(tx),
            tasks,
            serve: Some(serve),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        self.app.public_url.clone()
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Waits until the server stops (after [`Server::shutdown`] from elsewhere, or an error).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match self.serve.take() {
            Some(h) => h.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }

    /// Stops accepting requests and the background tasks. Runs in progress keep their
    /// threads until they end; if the process exits first they are found `running` at the
    /// next start and handled like a crash (interrupted, then requeued or failed).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in &self.tasks {
            t.abort();
        }
        if let Some(h) = self.serve.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
    }
}

async fn scheduler(app: Arc<App>) {
    let mut last_refresh: Option<std::time::Instant> = None;
    loop {
        let due = last_refresh.is_none_or(|t| t.elapsed() >= app.cfg.refresh);
        let a = app.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if due {
                crate::triggers::refresh_all(&a);
            }
            let now = crate::util::now_ms();
            crate::triggers::tick_schedules(&a, now);
            crate::chains::tick(&a, now);
        })
        .await;
        if due {
            last_refresh = Some(std::time::Instant::now());
        }
        tokio::time::sleep(app.cfg.tick).await;
    }
}

async fn registry_events(app: Arc<App>) {
    let mut rx = app.registry.events().subscribe();
    loop {
        match rx.recv().await {
            Ok(e) => {
                use drydock_registry_server::{EventAction, EventTarget};
                if e.action != EventAction::Push || e.target != EventTarget::Manifest {
                    continue;
                }
                let Some(tag) = e.tag.clone() else { continue };
                let a = app.clone();
                let repo = e.repository.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    crate::triggers::registry_push(&a, &repo, &tag)
                })
                .await;
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "registry events missed");
            }
            Err(_) => return,
        }
    }
}

/// Upstream images are polled on a thread of their own (the registry client's async API is
/// not `Sync`), with a small runtime.
fn upstream_poller(app: Arc<App>) {
    let weak = Arc::downgrade(&app);
    let home = app
        .cfg
        .engine_home
        .clone()
        .unwrap_or_else(|| app.cfg.data_dir.clone());
    let every = app.cfg.image_poll;
    drop(app);
    let _ = std::thread::Builder::new()
        .name("image-poll".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let client = match drydock_registry_client::ClientOptions::from_env(Some(&home))
                .and_then(drydock_registry_client::Client::new)
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "upstream image polling is off");
                    return;
                }
            };
            // Let the first refresh of the watch lists happen.
            std::thread::sleep(Duration::from_secs(2));
            loop {
                let Some(app) = weak.upgrade() else { return };
                rt.block_on(crate::triggers::poll_upstream(&app, &client));
                drop(app);
                std::thread::sleep(every);
            }
        });
}
