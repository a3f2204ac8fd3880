//! The JSON REST API (`/api/…`, described by `/api/openapi.json`) and the webhook endpoints
//! (`/hooks/…`). Every handler checks the caller's scope first.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use drydock_db::{Chain, Project, Status};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::{self, Principal};
use crate::chains::{self, ChainStep, StartOutcome};
use crate::triggers::{self, Outcome, Refused};
use crate::util::{now_ms, random_hex, sha256_hex};
use crate::webhooks::{self, Forge, HookError, Parsed};

pub type AppState = State<Arc<App>>;

/// An error answer: status and `{"error": message}`.
#[derive(Debug)]
pub struct ApiErr(pub StatusCode, pub String);

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<drydock_db::DbError> for ApiErr {
    fn from(e: drydock_db::DbError) -> Self {
        match e {
            drydock_db::DbError::NoRun(_) | drydock_db::DbError::NoJob { .. } => {
                ApiErr(StatusCode::NOT_FOUND, e.to_string())
            }
            e => ApiErr(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl From<Refused> for ApiErr {
    fn from(r: Refused) -> Self {
        ApiErr(
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            r.message,
        )
    }
}

pub type ApiResult = Result<Response, ApiErr>;

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

fn created(v: Value) -> ApiResult {
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub fn require(app: &App, headers: &HeaderMap, scope: &str) -> Result<Principal, ApiErr> {
    let p = auth::authenticate(&app.db, headers)?.ok_or_else(|| {
        ApiErr(
            StatusCode::UNAUTHORIZED,
            "log in, or send Authorization: Bearer <API token>".into(),
        )
    })?;
    if !p.has(scope) {
        return Err(ApiErr(
            StatusCode::FORBIDDEN,
            format!("user {} lacks the {scope} scope", p.user),
        ));
    }
    Ok(p)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiErr> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

// ---- projects

pub fn project_json(app: &App, p: &Project) -> Value {
    let secrets: Vec<Value> = app
        .db
        .secrets(p.id)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, _, at)| json!({"name": name, "updated_at": at}))
        .collect();
    json!({
        "name": p.name,
        "repo_url": p.repo_url,
        "default_branch": p.default_branch,
        "pipeline_file": p.pipeline_file,
        "forge": p.forge,
        "has_webhook_secret": p.webhook_secret.is_some(),
        "status_api": p.status_api,
        "status_repo": p.status_repo,
        "has_status_token": p.status_token.is_some(),
        "max_runs": p.max_runs,
        "concurrency": p.concurrency,
        "cancel_in_progress": p.cancel_in_progress,
        "on_interrupt": p.on_interrupt,
        "timeout_minutes": p.timeout_minutes,
        "secrets": secrets,
        "webhook_url": format!("{}/hooks/{}/{}", app.public_url.trim_end_matches('/'), p.name, p.forge),
        "created_at": p.created_at,
    })
}

/// The body of `POST /api/projects` and `PATCH /api/projects/{name}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectBody {
    pub name: Option<String>,
    pub repo_url: Option<String>,
    pub default_branch: Option<String>,
    pub pipeline_file: Option<String>,
    pub webhook_secret: Option<String>,
    pub forge: Option<String>,
    pub status_api: Option<String>,
    pub status_repo: Option<String>,
    pub status_token: Option<String>,
    pub max_runs: Option<i64>,
    pub concurrency: Option<String>,
    pub cancel_in_progress: Option<bool>,
    pub on_interrupt: Option<String>,
    pub timeout_minutes: Option<i64>,
    pub secrets: Option<std::collections::BTreeMap<String, String>>,
}

fn bad(msg: impl Into<String>) -> ApiErr {
    ApiErr(StatusCode::BAD_REQUEST, msg.into())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.starts_with('.')
}

fn apply(app: &App, p: &mut Project, b: &ProjectBody) -> Result<(), ApiErr> {
    if let Some(v) = &b.repo_url {
        p.repo_url = v.clone();
    }
    if let Some(v) = &b.default_branch {
        p.default_branch = v.clone();
    }
    if let Some(v) = &b.pipeline_file {
        p.pipeline_file = v.clone();
    }
    if let Some(v) = &b.webhook_secret {
        p.webhook_secret = (!v.is_empty()).then(|| app.seal.seal(v));
    }
    if let Some(v) = &b.forge {
        if Forge::parse(v).is_none() {
            return Err(bad(format!(
                "forge {v:?}: expected github, gitea, forgejo, gitlab or generic"
            )));
        }
        p.forge = v.clone();
    }
    if let Some(v) = &b.status_api {
        p.status_api = (!v.is_empty()).then(|| v.clone());
    }
    if let Some(v) = &b.status_repo {
        p.status_repo = (!v.is_empty()).then(|| v.clone());
    }
    if let Some(v) = &b.status_token {
        p.status_token = (!v.is_empty()).then(|| app.seal.seal(v));
    }
    if let Some(v) = b.max_runs {
        if v < 0 {
            return Err(bad("max_runs must be 0 (no limit) or more"));
        }
        p.max_runs = v;
    }
    if let Some(v) = &b.concurrency {
        if !matches!(v.as_str(), "none" | "ref" | "project") {
            return Err(bad(format!(
                "concurrency {v:?}: expected none, ref or project"
            )));
        }
        p.concurrency = v.clone();
    }
    if let Some(v) = b.cancel_in_progress {
        p.cancel_in_progress = v;
    }
    if let Some(v) = &b.on_interrupt {
        if !matches!(v.as_str(), "requeue" | "fail") {
            return Err(bad(format!("on_interrupt {v:?}: expected requeue or fail")));
        }
        p.on_interrupt = v.clone();
    }
    if let Some(v) = b.timeout_minutes {
        p.timeout_minutes = (v > 0).then_some(v);
    }
    if p.repo_url.is_empty() {
        return Err(bad("repo_url is required"));
    }
    Ok(())
}

fn put_secrets(app: &App, p: &Project, b: &ProjectBody) -> Result<(), ApiErr> {
    if let Some(s) = &b.secrets {
        for (k, v) in s {
            check_secret_name(k)?;
            app.db.put_secret(p.id, k, &app.seal.seal(v), now_ms())?;
        }
    }
    Ok(())
}

fn check_secret_name(k: &str) -> Result<(), ApiErr> {
    let ok = !k.is_empty()
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !k.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "secret name {k:?}: letters, digits and _ (not starting with a digit)"
        )))
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiErr> {
    serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not valid JSON for this request: {e}")))
}

pub async fn list_projects(State(app): AppState, headers: HeaderMap) -> ApiResult {
    require(&app, &headers, "read")?;
    let v: Vec<Value> = app
        .db
        .projects()?
        .iter()
        .map(|p| project_json(&app, p))
        .collect();
    ok(json!({ "projects": v }))
}

pub async fn create_project(State(app): AppState, headers: HeaderMap, body: Bytes) -> ApiResult {
    require(&app, &headers, "admin")?;
    let b: ProjectBody = parse_json(&body)?;
    let name = b.name.clone().ok_or_else(|| bad("name is required"))?;
    if !valid_name(&name) {
        return Err(bad(format!(
            "project name {name:?}: letters, digits, '-', '_' and '.'"
        )));
    }
    let mut p = Project {
        id: 0,
        name: name.clone(),
        repo_url: String::new(),
        default_branch: "main".into(),
        pipeline_file: "drydock.yml".into(),
        webhook_secret: None,
        forge: "github".into(),
        status_api: None,
        status_repo: None,
        status_token: None,
        max_runs: 0,
        concurrency: "none".into(),
        cancel_in_progress: false,
        on_interrupt: "requeue".into(),
        timeout_minutes: None,
        created_at: now_ms(),
    };
    apply(&app, &mut p, &b)?;
    let Some(id) = app.db.create_project(&p)? else {
        return Err(ApiErr(
            StatusCode::CONFLICT,
            format!("project {name} exists"),
        ));
    };
    p.id = id;
    put_secrets(&app, &p, &b)?;
    let app2 = app.clone();
    let p2 = p.clone();
    // Read its default branch (schedules, watched images) in the background.
    tokio::task::spawn_blocking(move || {
        let r = format!("refs/heads/{}", p2.default_branch);
        if let Ok(sha) = app2.git.resolve_ref(&p2.name, &p2.repo_url, &r)
            && let Ok(l) = app2.load_pipeline(&p2, &sha)
        {
            triggers::set_watch(&app2, &p2.name, &sha, &l);
        }
    });
    app.changed();
    created(project_json(&app, &p))
}

fn get_project(app: &App, name: &str) -> Result<Project, ApiErr> {
    app.db
        .project(name)?
        .ok_or_else(|| ApiErr(StatusCode::NOT_FOUND, format!("no project {name}")))
}

pub async fn show_project(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    require(&app, &headers, "read")?;
    let p = get_project(&app, &name)?;
    ok(project_json(&app, &p))
}

pub async fn update_project(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    require(&app, &headers, "admin")?;
    let b: ProjectBody = parse_json(&body)?;
    if b.name.as_deref().is_some_and(|n| n != name) {
        return Err(bad("a project cannot be renamed"));
    }
    let mut p = get_project(&app, &name)?;
    apply(&app, &mut p, &b)?;
    app.db.update_project(&p)?;
    put_secrets(&app, &p, &b)?;
    app.changed();
    ok(project_json(&app, &p))
}

pub async fn delete_project(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    require(&app, &headers, "admin")?;
    if !app.db.delete_project(&name)? {
        return Err(ApiErr(StatusCode::NOT_FOUND, format!("no project {name}")));
    }
    app.changed();
    ok(json!({ "deleted": name }))
}

pub async fn list_secrets(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    require(&app, &headers, "read")?;
    let p = get_project(&app, &name)?;
    let v: Vec<Value> = app
        .db
        .secrets(p.id)?
        .into_iter()
        .map(|(n, _, at)| json!({"name": n, "updated_at": at}))
        .collect();
    ok(json!({ "secrets": v }))
}

#[derive(Deserialize)]
pub struct SecretBody {
    value: String,
}

pub async fn put_secret(
    State(app): AppState,
    headers: HeaderMap,
    Path((name, key)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    require(&app, &headers, "admin")?;
    let p = get_project(&app, &name)?;
    check_secret_name(&key)?;
    let b: SecretBody = parse_json(&body)?;
    app.db
        .put_secret(p.id, &key, &app.seal.seal(&b.value), now_ms())?;
    ok(json!({ "name": key }))
}

pub async fn delete_secret(
    State(app): AppState,
    headers: HeaderMap,
    Path((name, key)): Path<(String, String)>,
) -> ApiResult {
    require(&app, &headers, "admin")?;
    let p = get_project(&app, &name)?;
    if !app.db.delete_secret(p.id, &key)? {
        return Err(ApiErr(StatusCode::NOT_FOUND, format!("no secret {key}")));
    }
    ok(json!({ "deleted": key }))
}

pub async fn rotate_key(State(app): AppState, headers: HeaderMap) -> ApiResult {
    require(&app, &headers, "admin")?;
    let app2 = app.clone();
    let r = blocking(move || rotate(&app2)).await?;
    match r {
        Ok((n, id)) => ok(json!({ "resealed": n, "key_id": id })),
        Err(e) => Err(ApiErr(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

/// Re-encrypts every sealed value under a new key. Returns (values, new key id).
pub fn rotate(app: &App) -> Result<(usize, String), String> {
    let db = app.db.clone();
    let r = app
        .seal
        .rotate(|reseal| match db.reseal_all(reseal) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.to_string()),
        })
        .map_err(|e| e.to_string())?;
    r.map(|n| (n, app.seal.key_id()))
}

// ---- runs

pub fn run_json(app: &App, id: i64) -> Result<Value, ApiErr> {
    let d = app.db.run_detail(id)?;
    let meta = app.db.run_meta(id)?;
    let jobs: Vec<Value> = d
        .jobs
        .iter()
        .map(|(j, steps)| {
            json!({
                "name": j.name, "status": j.status, "reason": j.reason, "needs": j.needs,
                "started_at": j.started_at, "finished_at": j.finished_at,
                "steps": steps.iter().map(|s| json!({
                    "index": s.idx, "name": s.name, "status": s.status, "reason": s.reason,
                    "exit_code": s.exit_code, "started_at": s.started_at, "finished_at": s.finished_at,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let r = &d.run;
    let fork = r
        .context
        .pointer("/pull_request/fork")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(json!({
        "id": r.id, "project": r.project, "event": r.event, "ref": r.git_ref, "sha": r.sha,
        "cause": r.cause, "status": r.status, "reason": r.reason,
        "created_at": r.created_at, "started_at": r.started_at, "finished_at": r.finished_at,
        "jobs": jobs, "images": d.images,
        "fork": fork,
        "approved_by": meta.as_ref().and_then(|m| m.approved_by.clone()),
        "retry_of": meta.as_ref().and_then(|m| m.retry_of),
        "chain": meta.as_ref().and_then(|m| m.chain_id),
        "url": app.run_url(r.id),
        // Still held by a worker (finishing touches: reason, statuses, chains).
        "active": app.is_active(r.id),
    }))
}

fn run_summary(r: &drydock_db::Run) -> Value {
    json!({
        "id": r.id, "project": r.project, "event": r.event, "ref": r.git_ref, "sha": r.sha,
        "cause": r.cause, "status": r.status, "reason": r.reason,
        "created_at": r.created_at, "started_at": r.started_at, "finished_at": r.finished_at,
    })
}

#[derive(Deserialize)]
pub struct RunsQuery {
    project: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

pub async fn list_runs(
    State(app): AppState,
    headers: HeaderMap,
    Query(q): Query<RunsQuery>,
) -> ApiResult {
    require(&app, &headers, "read")?;
    let runs = app.db.list_runs_page(
        q.project.as_deref(),
        q.before,
        q.limit.unwrap_or(50).clamp(1, 500),
    )?;
    let v: Vec<Value> = runs.iter().map(run_summary).collect();
    ok(json!({ "runs": v }))
}

pub async fn show_run(State(app): AppState, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult {
    require(&app, &headers, "read")?;
    ok(run_json(&app, id)?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub job: Option<String>,
}

pub async fn trigger_run(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let who = require(&app, &headers, "run")?;
    let b: TriggerBody = if body.is_empty() {
        TriggerBody::default()
    } else {
        parse_json(&body)?
    };
    let p = get_project(&app, &name)?;
    let app2 = app.clone();
    let id = blocking(move || {
        triggers::manual(&app2, &p, b.git_ref.as_deref(), b.job.as_deref(), &who.user)
    })
    .await??;
    created(json!({ "run": id, "url": app.run_url(id) }))
}

pub async fn cancel_run(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult {
    let who = require(&app, &headers, "run")?;
    app.db.run(id)?;
    let changed = app
        .cancel(id, &format!("cancelled by {}", who.user))
        .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if !changed {
        return Err(ApiErr(
            StatusCode::CONFLICT,
            format!("run {id} has already finished"),
        ));
    }
    ok(json!({ "run": id, "cancelled": true }))
}

#[derive(Debug, Default, Deserialize)]
pub struct RerunBody {
    /// Re-run only the jobs that did not pass; the passed ones are kept with what they
    /// persisted.
    #[serde(default)]
    pub failed_only: bool,
}

pub async fn rerun_run(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> ApiResult {
    let who = require(&app, &headers, "run")?;
    let b: RerunBody = if body.is_empty() {
        RerunBody::default()
    } else {
        parse_json(&body)?
    };
    let app2 = app.clone();
    let how = if b.failed_only {
        triggers::Rerun::Failed
    } else {
        triggers::Rerun::All
    };
    let new = blocking(move || triggers::rerun(&app2, id, &who.user, how)).await??;
    created(json!({ "run": new, "url": app.run_url(new) }))
}

pub async fn approve_run(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult {
    let who = require(&app, &headers, "admin")?;
    let app2 = app.clone();
    let new =
        blocking(move || triggers::rerun(&app2, id, &who.user, triggers::Rerun::Approve)).await??;
    created(json!({ "run": new, "url": app.run_url(new) }))
}

#[derive(Deserialize)]
pub struct LogsQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

pub async fn job_logs(
    State(app): AppState,
    headers: HeaderMap,
    Path((id, job)): Path<(i64, String)>,
    Query(q): Query<LogsQuery>,
) -> ApiResult {
    require(&app, &headers, "read")?;
    let j = app.db.job_by_name(id, &job)?;
    let lines = app.job_lines(
        id,
        &j,
        q.after.unwrap_or(0),
        q.limit.unwrap_or(10_000).clamp(1, 100_000),
    )?;
    ok(json!({ "job": job, "status": j.status, "lines": lines }))
}

/// Server-sent events of a job's log: `event: line` (JSON with `seq`, `stream`, `line` and
/// `html`, the line with ANSI colours as HTML), then `event: end` with the job's status.
pub async fn job_events(
    State(app): AppState,
    headers: HeaderMap,
    Path((id, job)): Path<(i64, String)>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiErr> {
    require(&app, &headers, "read")?;
    let j = app.db.job_by_name(id, &job)?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or(q.after)
        .unwrap_or(0);
    struct St {
        app: Arc<App>,
        job: drydock_db::Job,
        run_id: i64,
        name: String,
        after: i64,
        rx: tokio::sync::watch::Receiver<u64>,
        pending: std::collections::VecDeque<SseEvent>,
        done: bool,
    }
    let st = St {
        rx: app.changes.subscribe(),
        app: app.clone(),
        job: j,
        run_id: id,
        name: job,
        after,
        pending: Default::default(),
        done: false,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop_front() {
                return Some((Ok::<_, std::convert::Infallible>(e), st));
            }
            if st.done {
                return None;
            }
            let lines = st
                .app
                .job_lines(st.run_id, &st.job, st.after, 1000)
                .unwrap_or_default();
            if !lines.is_empty() {
                for l in lines {
                    st.after = l.seq;
                    let data = json!({
                        "seq": l.seq, "stream": l.stream, "step": l.step_idx, "line": l.line,
                        "html": crate::ansi::to_html(&l.line),
                    });
                    st.pending.push_back(
                        SseEvent::default()
                            .event("line")
                            .id(l.seq.to_string())
                            .data(data.to_string()),
                    );
                }
                continue;
            }
            let status = st
                .app
                .db
                .job_by_name(st.run_id, &st.name)
                .map(|j| j.status)
                .unwrap_or(Status::Failure);
            if status.is_finished() {
                // One more look: the last batch may have landed with the status.
                let lines = st
                    .app
                    .job_lines(st.run_id, &st.job, st.after, 1000)
                    .unwrap_or_default();
                if lines.is_empty() {
                    st.done = true;
                    return Some((
                        Ok(SseEvent::default()
                            .event("end")
                            .data(json!({ "status": status }).to_string())),
                        st,
                    ));
                }
                continue;
            }
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(500), st.rx.changed()).await;
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

// ---- chains

pub fn chain_json(app: &App, c: &Chain) -> Value {
    let runs: Vec<Value> = app
        .db
        .chain_runs(c.id, 20)
        .unwrap_or_default()
        .into_iter()
        .map(|(m, r)| {
            json!({"run": r.id, "step": m.chain_step, "status": r.status, "reason": r.reason, "cause": r.cause})
        })
        .collect();
    json!({
        "name": c.name, "project": c.project, "repository": c.repository,
        "steps": chains::steps(c), "delay_seconds": c.delay_seconds, "cron": c.cron,
        "status": c.status, "reason": c.reason, "current_step": c.current_step,
        "current_run": c.current_run, "cause": c.cause, "coalesced": c.coalesced,
        "next_at": c.next_at, "started_at": c.started_at, "finished_at": c.finished_at,
        "runs": runs,
        "webhook_url": format!("{}/hooks/chains/{}/dockerhub", app.public_url.trim_end_matches('/'), c.name),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainBody {
    pub name: String,
    pub project: String,
    pub repository: String,
    pub steps: Vec<ChainStepBody>,
    #[serde(default)]
    pub delay_seconds: i64,
    pub cron: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ChainStepBody {
    Tag(String),
    Step(ChainStep),
}

pub async fn list_chains(State(app): AppState, headers: HeaderMap) -> ApiResult {
    require(&app, &headers, "read")?;
    let v: Vec<Value> = app
        .db
        .chains()?
        .iter()
        .map(|c| chain_json(&app, c))
        .collect();
    ok(json!({ "chains": v }))
}

pub async fn create_chain(State(app): AppState, headers: HeaderMap, body: Bytes) -> ApiResult {
    require(&app, &headers, "admin")?;
    let b: ChainBody = parse_json(&body)?;
    if !valid_name(&b.name) {
        return Err(bad(format!(
            "chain name {:?}: letters, digits, '-', '_' and '.'",
            b.name
        )));
    }
    get_project(&app, &b.project)?;
    let steps: Vec<ChainStep> = b
        .steps
        .into_iter()
        .map(|s| match s {
            ChainStepBody::Tag(t) => ChainStep { tag: t, job: None },
            ChainStepBody::Step(s) => s,
        })
        .collect();
    if steps.len() < 2 {
        return Err(bad("a chain has at least two steps (init, …, latest)"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &steps {
        if !seen.insert(s.tag.clone()) {
            return Err(bad(format!("tag {} appears twice in the sequence", s.tag)));
        }
    }
    if let Some(c) = &b.cron
        && let Err(e) = drydock_config::cron::Cron::parse(c)
    {
        return Err(bad(format!("cron {c:?}: {}", e.message)));
    }
    if b.delay_seconds < 0 {
        return Err(bad("delay_seconds must be 0 or more"));
    }
    let token = format!("dht_{}", random_hex(16));
    let c = Chain {
        id: 0,
        name: b.name.clone(),
        project: b.project,
        repository: b.repository,
        steps: serde_json::to_string(&steps).unwrap_or_default(),
        delay_seconds: b.delay_seconds,
        cron: b.cron,
        webhook_token_hash: sha256_hex(token.as_bytes()),
        status: "idle".into(),
        reason: None,
        current_step: None,
        current_run: None,
        cause: None,
        coalesced: 0,
        next_at: None,
        started_at: None,
        finished_at: None,
        created_at: now_ms(),
    };
    if app.db.create_chain(&c)?.is_none() {
        return Err(ApiErr(
            StatusCode::CONFLICT,
            format!("chain {} exists", b.name),
        ));
    }
    let c = app
        .db
        .chain(&b.name)?
        .ok_or_else(|| bad("chain vanished"))?;
    let mut v = chain_json(&app, &c);
    v["webhook_token"] = json!(token);
    v["webhook_url"] = json!(format!(
        "{}/hooks/chains/{}/dockerhub?token={token}",
        app.public_url.trim_end_matches('/'),
        c.name
    ));
    created(v)
}

pub async fn show_chain(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    require(&app, &headers, "read")?;
    let c = app
        .db
        .chain(&name)?
        .ok_or_else(|| ApiErr(StatusCode::NOT_FOUND, format!("no chain {name}")))?;
    ok(chain_json(&app, &c))
}

pub async fn delete_chain(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    require(&app, &headers, "admin")?;
    if !app.db.delete_chain(&name)? {
        return Err(ApiErr(StatusCode::NOT_FOUND, format!("no chain {name}")));
    }
    ok(json!({ "deleted": name }))
}

pub async fn start_chain(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    let who = require(&app, &headers, "run")?;
    let app2 = app.clone();
    let r = blocking(move || chains::start(&app2, &name, 0, &format!("started by {}", who.user)))
        .await??;
    let v = match r {
        StartOutcome::Started(id) => json!({"started": true, "run": id}),
        StartOutcome::Waiting => json!({"started": true}),
        StartOutcome::Coalesced => json!({"started": false, "coalesced": true}),
    };
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

// ---- registry, users, tokens

pub async fn registry_repositories(State(app): AppState, headers: HeaderMap) -> ApiResult {
    require(&app, &headers, "read")?;
    let repos = app
        .registry
        .storage()
        .repositories()
        .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    ok(json!({ "repositories": repos }))
}

#[derive(Deserialize)]
pub struct TagsQuery {
    repository: String,
}

pub async fn registry_tags(
    State(app): AppState,
    headers: HeaderMap,
    Query(q): Query<TagsQuery>,
) -> ApiResult {
    require(&app, &headers, "read")?;
    let tags = app
        .registry
        .storage()
        .tag_map(&q.repository)
        .map_err(|e| ApiErr(StatusCode::NOT_FOUND, e.to_string()))?;
    let v: Vec<Value> = tags
        .into_iter()
        .map(|(t, d)| json!({"tag": t, "digest": d.to_string()}))
        .collect();
    ok(json!({ "repository": q.repository, "tags": v }))
}

pub async fn whoami(State(app): AppState, headers: HeaderMap) -> ApiResult {
    let p = require(&app, &headers, "read")?;
    ok(json!({ "user": p.user, "scopes": p.scopes }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

pub async fn list_users(State(app): AppState, headers: HeaderMap) -> ApiResult {
    require(&app, &headers, "admin")?;
    ok(json!({ "users": app.db.users()? }))
}

pub async fn create_user(State(app): AppState, headers: HeaderMap, body: Bytes) -> ApiResult {
    require(&app, &headers, "admin")?;
    let b: UserBody = parse_json(&body)?;
    if !valid_name(&b.name) {
        return Err(bad("user name: letters, digits, '-', '_' and '.'"));
    }
    if b.password.len() < 8 {
        return Err(bad("a password has at least 8 characters"));
    }
    let hash = blocking(move || auth::hash_password(&b.password)).await?;
    if app
        .db
        .create_user(&b.name, &hash, b.admin, now_ms())?
        .is_none()
    {
        return Err(ApiErr(
            StatusCode::CONFLICT,
            format!("user {} exists", b.name),
        ));
    }
    created(json!({ "name": b.name, "admin": b.admin }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    name: String,
    scopes: String,
}

pub async fn list_tokens(State(app): AppState, headers: HeaderMap) -> ApiResult {
    let p = require(&app, &headers, "read")?;
    let u = app.db.user(&p.user)?.ok_or_else(|| bad("no such user"))?;
    let all = p.has("admin");
    ok(json!({ "tokens": app.db.tokens((!all).then_some(u.id))? }))
}

pub async fn create_token(State(app): AppState, headers: HeaderMap, body: Bytes) -> ApiResult {
    let p = require(&app, &headers, "read")?;
    let b: TokenBody = parse_json(&body)?;
    let scopes = auth::parse_scopes(&b.scopes).map_err(bad)?;
    if let Some(s) = scopes.iter().find(|s| !p.has(s)) {
        return Err(ApiErr(
            StatusCode::FORBIDDEN,
            format!("you lack the {s} scope"),
        ));
    }
    let u = app.db.user(&p.user)?.ok_or_else(|| bad("no such user"))?;
    let (id, value) = auth::create_token(&app.db, &u, &b.name, &scopes)?
        .map_err(|e| ApiErr(StatusCode::FORBIDDEN, e))?;
    created(json!({ "id": id, "name": b.name, "scopes": scopes, "token": value }))
}

pub async fn delete_token(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult {
    let p = require(&app, &headers, "read")?;
    let u = app.db.user(&p.user)?.ok_or_else(|| bad("no such user"))?;
    let mine = app.db.tokens(Some(u.id))?.iter().any(|t| t.id == id);
    if !mine && !p.has("admin") {
        return Err(ApiErr(StatusCode::FORBIDDEN, "not your token".into()));
    }
    if !app.db.delete_token(id)? {
        return Err(ApiErr(StatusCode::NOT_FOUND, format!("no token {id}")));
    }
    ok(json!({ "deleted": id }))
}

// ---- webhooks

/// `POST /hooks/{project}/{forge}`: a forge's delivery. 401 for a bad signature, 400 for a
/// malformed body, 200 for a replay or a delivery that starts nothing, 202 with the runs.
pub async fn hook(
    State(app): AppState,
    Path((project, forge)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let forge = Forge::parse(&forge).ok_or_else(|| {
        ApiErr(
            StatusCode::NOT_FOUND,
            format!("no webhook kind {forge} (github, gitea, forgejo, gitlab, generic)"),
        )
    })?;
    let p = app
        .db
        .project(&project)?
        .ok_or_else(|| ApiErr(StatusCode::NOT_FOUND, format!("no project {project}")))?;
    let Some(secret) = &p.webhook_secret else {
        return Err(ApiErr(
            StatusCode::UNAUTHORIZED,
            format!("project {project} has no webhook secret: every delivery is refused"),
        ));
    };
    let secret = app
        .seal
        .open_value(secret)
        .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let delivery =
        webhooks::verify(forge, &secret, &headers, &body, now_ms() / 1000).map_err(hook_err)?;
    let parsed = webhooks::parse(forge, &headers, &body).map_err(hook_err)?;
    let source = format!("{}:{}", forge.as_str(), project);
    let ev_name = webhooks::event_name(forge, &headers);
    if !app.db.record_delivery(
        &source,
        &delivery,
        Some(&project),
        ev_name.as_deref(),
        now_ms(),
    )? {
        return ok(json!({
            "delivery": delivery, "duplicate": true,
            "message": "this delivery was received before: nothing started",
        }));
    }
    let t = match parsed {
        Parsed::Ignored(why) => {
            app.db
                .set_delivery_outcome(&source, &delivery, &format!("ignored: {why}"))?;
            return ok(json!({ "delivery": delivery, "ignored": why }));
        }
        Parsed::Trigger(t) => t,
    };
    let app2 = app.clone();
    let r = blocking(move || triggers::from_webhook(&app2, &p, t)).await?;
    match r {
        Ok(Outcome::Started(ids)) => {
            app.db
                .set_delivery_outcome(&source, &delivery, &format!("runs {ids:?}"))?;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "delivery": delivery, "runs": ids })),
            )
                .into_response())
        }
        Ok(Outcome::NotRun(why)) => {
            app.db
                .set_delivery_outcome(&source, &delivery, &format!("not run: {why}"))?;
            ok(json!({ "delivery": delivery, "runs": [], "not_run": why }))
        }
        Err(r) => {
            // Nothing started: a corrected retry of the same delivery may run.
            app.db.forget_delivery(&source, &delivery)?;
            Err(r.into())
        }
    }
}

fn hook_err(e: HookError) -> ApiErr {
    match e {
        HookError::Unauthorized(m) => ApiErr(StatusCode::UNAUTHORIZED, m),
        HookError::BadRequest(m) => ApiErr(StatusCode::BAD_REQUEST, m),
    }
}

#[derive(Deserialize)]
pub struct HubQuery {
    token: Option<String>,
}

/// `POST /hooks/chains/{name}/dockerhub?token=…`: Docker Hub's push payload advances a chain.
pub async fn hub_hook(
    State(app): AppState,
    Path(name): Path<String>,
    Query(q): Query<HubQuery>,
    body: Bytes,
) -> ApiResult {
    let c = app
        .db
        .chain(&name)?
        .ok_or_else(|| ApiErr(StatusCode::NOT_FOUND, format!("no chain {name}")))?;
    let given = q.token.unwrap_or_default();
    if !crate::util::ct_eq(
        sha256_hex(given.as_bytes()).as_bytes(),
        c.webhook_token_hash.as_bytes(),
    ) {
        return Err(ApiErr(
            StatusCode::UNAUTHORIZED,
            "missing or wrong ?token= for this chain's webhook".into(),
        ));
    }
    let push = chains::parse_hub(&body)?;
    let app2 = app.clone();
    let push2 = push.clone();
    let r = blocking(move || chains::hub_push(&app2, &name, &push2)).await?;
    if let Some(cb) = push.callback_url.clone()
        && (cb.starts_with("http://") || cb.starts_with("https://"))
    {
        let (state, desc) = match &r {
            Ok(m) => ("success", m.clone()),
            Err(e) => ("failure", e.message.clone()),
        };
        let http = app.http.clone();
        tokio::spawn(async move {
            let body = json!({"state": state, "description": desc, "context": "drydock", "target_url": ""});
            let _ = http
                .post(&cb)
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await;
        });
    }
    match r {
        Ok(m) => Ok((StatusCode::ACCEPTED, Json(json!({ "message": m }))).into_response()),
        Err(e) => Err(e.into()),
    }
}
