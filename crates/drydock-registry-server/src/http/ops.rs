//! Operations endpoints: `/healthz` and `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Registry;

pub(crate) fn router(reg: Registry) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(reg)
}

async fn healthz(State(reg): State<Registry>) -> Response {
    // Healthy when the storage answers.
    let root = reg.inner.storage.root().to_path_buf();
    let ok = tokio::task::spawn_blocking(move || root.join("repositories").is_dir())
        .await
        .unwrap_or(false);
    let (status, body) = if ok {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n")
    };
    (status, body).into_response()
}

async fn metrics(State(reg): State<Registry>) -> Response {
    let inner = &reg.inner;
    let gauges = [
        (
            "drydock_registry_uploads_active",
            "Upload sessions in memory.",
            inner.uploads.active() as f64,
        ),
        (
            "drydock_registry_resident_memory_bytes",
            "Resident memory of the process.",
            crate::metrics::resident_bytes().unwrap_or(0) as f64,
        ),
        (
            "drydock_registry_uptime_seconds",
            "Seconds since the registry started.",
            inner.started.elapsed().as_secs_f64(),
        ),
        (
            "drydock_registry_event_subscribers",
            "Subscribers of the event bus.",
            inner.events.subscribers() as f64,
        ),
    ];
    let mut r = inner.metrics.render(&gauges).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
