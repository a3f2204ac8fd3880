//! The web UI: server-rendered HTML, no JavaScript build step. Pages: runs, projects, a run
//! (job graph as inline SVG, steps, images, live logs over SSE with a few lines of inline
//! script), chains, the registry's repositories and tags, login. Every page works without
//! JavaScript except the live part of logs (each job's full log is also a plain page).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use drydock_db::{Job, Status};
use serde::Deserialize;

use crate::api::AppState;
use crate::app::App;
use crate::auth::{self, Principal};
use crate::chains;
use crate::triggers;
use crate::util::{esc, pct};

const CSS: &str = r#"
body{font-family:system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}
header a{color:#dfe6f0;text-decoration:none}header .me{margin-left:auto}
main{padding:1em 1.5em;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff}
td,th{padding:.35em .6em;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
.st{display:inline-block;padding:.05em .5em;border-radius:.8em;font-size:.85em;color:#fff}
.st-success{background:#2e9d57}.st-failure{background:#cf3b3b}.st-running{background:#d99a00}
.st-queued{background:#7b8794}.st-skipped{background:#a0a8b3}.st-cancelled{background:#5d6670}
.st-interrupted{background:#8e44ad}.st-idle{background:#a0a8b3}.st-waiting{background:#2472c8}
pre.log{background:#111820;color:#d0d0d0;padding:.6em;overflow:auto;max-height:32em;font-size:.82em;margin:0}
pre.log div{white-space:pre-wrap}
.job{background:#fff;margin:1em 0;padding:.6em;border:1px solid #e3e6ea}
.reason{color:#6b7480}.box{background:#fff;padding:.8em;border:1px solid #e3e6ea;margin:.8em 0}
form.inline{display:inline}button{cursor:pointer}
.chain span{display:inline-block;padding:.2em .6em;margin:.1em;border-radius:.3em;background:#e3e6ea}
.chain .done{background:#2e9d57;color:#fff}.chain .current{background:#d99a00;color:#fff}.chain .failed{background:#cf3b3b;color:#fff}
"#;

fn page(title: &str, who: Option<&Principal>, body: &str) -> Response {
    let me = match who {
        Some(p) => format!(
            "<span class=me>{} <form class=inline method=post action=/logout><button>log out</button></form></span>",
            esc(&p.user)
        ),
        None => String::new(),
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{} · drydock</title><style>{CSS}</style></head>\
         <body><header><b>drydock</b><a href=/>runs</a><a href=/projects>projects</a><a href=/chains>chains</a><a href=/registry>registry</a>{me}</header>\
         <main>{body}</main></body></html>",
        esc(title)
    ))
    .into_response()
}

fn badge(s: &str) -> String {
    format!("<span class=\"st st-{s}\">{s}</span>")
}

/// The caller, or a redirect to the login page.
fn who(app: &App, headers: &HeaderMap, next: &str) -> Result<Principal, Response> {
    match auth::authenticate(&app.db, headers) {
        Ok(Some(p)) => Ok(p),
        _ => Err(Redirect::to(&format!("/login?next={}", pct(next))).into_response()),
    }
}

fn when(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => drydock_registry_server::events::rfc3339(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
        ),
        None => String::new(),
    }
}

fn run_rows(runs: &[drydock_db::Run]) -> String {
    let mut s = String::from(
        "<table><tr><th>run</th><th>project</th><th>status</th><th>cause</th><th>ref</th><th>created</th></tr>",
    );
    for r in runs {
        s.push_str(&format!(
            "<tr><td><a href=/runs/{id}>#{id}</a></td><td><a href=/projects/{pp}>{p}</a></td><td>{st}</td><td>{c}<div class=reason>{why}</div></td><td>{gr}</td><td>{t}</td></tr>",
            id = r.id,
            pp = pct(&r.project),
            p = esc(&r.project),
            st = badge(r.status.as_str()),
            c = esc(&r.cause),
            why = esc(r.reason.as_deref().unwrap_or("")),
            gr = esc(&r.git_ref),
            t = when(Some(r.created_at)),
        ));
    }
    s.push_str("</table>");
    s
}

pub async fn index(State(app): AppState, headers: HeaderMap) -> Response {
    let p = match who(&app, &headers, "/") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let runs = app.db.list_runs_page(None, None, 100).unwrap_or_default();
    page(
        "runs",
        Some(&p),
        &format!("<h2>Runs</h2>{}", run_rows(&runs)),
    )
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    error: Option<String>,
}

pub async fn login_page(Query(q): Query<NextQuery>) -> Response {
    let next = q.next.unwrap_or_else(|| "/".into());
    let err = q
        .error
        .map(|e| format!("<p class=reason>{}</p>", esc(&e)))
        .unwrap_or_default();
    page(
        "log in",
        None,
        &format!(
            "<h2>Log in</h2>{err}<form method=post action=/login class=box>\
             <input type=hidden name=next value=\"{}\">\
             <p><label>user <input name=name id=name autofocus></label></p>\
             <p><label>password <input type=password name=password id=password></label></p>\
             <button id=login type=submit>log in</button></form>",
            esc(&next)
        ),
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

pub async fn login(State(app): AppState, body: Bytes) -> Response {
    let Ok(f) = serde_urlencoded::from_bytes::<LoginForm>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad form").into_response();
    };
    let next = f
        .next
        .filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    let app2 = app.clone();
    let user = tokio::task::spawn_blocking(move || {
        app2.db
            .user(&f.name)
            .ok()
            .flatten()
            .filter(|u| auth::verify_password(&u.password_hash, &f.password))
    })
    .await
    .ok()
    .flatten();
    let Some(user) = user else {
        return Redirect::to(&format!(
            "/login?next={}&error={}",
            pct(&next),
            pct("wrong user or password")
        ))
        .into_response();
    };
    let Ok(token) = auth::create_session(&app.db, &user) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "session").into_response();
    };
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict",
        auth::SESSION_COOKIE
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub async fn logout(State(app): AppState, headers: HeaderMap) -> Response {
    if let Some(c) = auth::session_cookie(&headers) {
        let _ = app
            .db
            .delete_session(&crate::util::sha256_hex(c.as_bytes()));
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        auth::SESSION_COOKIE
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub async fn projects(State(app): AppState, headers: HeaderMap) -> Response {
    let p = match who(&app, &headers, "/projects") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut s = String::from(
        "<h2>Projects</h2><table><tr><th>project</th><th>repository</th><th>default branch</th><th>forge</th><th>last run</th></tr>",
    );
    for pr in app.db.projects().unwrap_or_default() {
        let last = app
            .db
            .list_runs_page(Some(&pr.name), None, 1)
            .unwrap_or_default();
        let last = last
            .first()
            .map(|r| {
                format!(
                    "<a href=/runs/{}>#{}</a> {}",
                    r.id,
                    r.id,
                    badge(r.status.as_str())
                )
            })
            .unwrap_or_default();
        s.push_str(&format!(
            "<tr><td><a href=/projects/{}>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{last}</td></tr>",
            pct(&pr.name),
            esc(&pr.name),
            esc(&pr.repo_url),
            esc(&pr.default_branch),
            esc(&pr.forge)
        ));
    }
    s.push_str("</table><p class=reason>Add projects with <code>drydock project add</code> or <code>POST /api/projects</code>.</p>");
    page("projects", Some(&p), &s)
}

pub async fn project(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let p = match who(&app, &headers, &format!("/projects/{name}")) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(Some(pr)) = app.db.project(&name) else {
        return page("not found", Some(&p), "<p>No such project.</p>");
    };
    let secrets: Vec<String> = app
        .db
        .secrets(pr.id)
        .unwrap_or_default()
        .into_iter()
        .map(|(n, _, _)| format!("<code>{}</code>", esc(&n)))
        .collect();
    let runs = app
        .db
        .list_runs_page(Some(&name), None, 50)
        .unwrap_or_default();
    let watch = app
        .watch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&name)
        .cloned()
        .unwrap_or_default();
    let schedules: Vec<String> = watch
        .schedules
        .iter()
        .map(|s| format!("<code>{}</code>", esc(&s.cron.text)))
        .collect();
    let images: Vec<String> = watch
        .images
        .iter()
        .map(|s| format!("<code>{}</code>", esc(s)))
        .collect();
    let body = format!(
        "<h2>{n}</h2><div class=box><p>repository <code>{repo}</code>, default branch <code>{db}</code>, pipeline <code>{pf}</code></p>\
         <p>webhook: <code>{url}/hooks/{n}/{forge}</code> ({hook})</p>\
         <p>concurrency: {conc}{cip}; runs at once: {max}; after a crash: {oi}; timeout: {to}</p>\
         <p>secrets (names only): {sec}</p><p>schedules: {sch}</p><p>watched images: {img}</p>\
         <form method=post action=/projects/{pn}/run>ref <input name=ref placeholder={db}> job <input name=job placeholder=all> <button id=trigger>run now</button></form></div>\
         <h3>Runs</h3>{runs}",
        n = esc(&pr.name),
        pn = pct(&pr.name),
        repo = esc(&pr.repo_url),
        db = esc(&pr.default_branch),
        pf = esc(&pr.pipeline_file),
        url = esc(app.public_url.trim_end_matches('/')),
        forge = esc(&pr.forge),
        hook = if pr.webhook_secret.is_some() {
            "signed with the project's secret"
        } else {
            "no webhook secret: deliveries are refused"
        },
        conc = esc(&pr.concurrency),
        cip = if pr.cancel_in_progress {
            ", cancel in progress"
        } else {
            ""
        },
        max = if pr.max_runs == 0 {
            "no limit".to_string()
        } else {
            pr.max_runs.to_string()
        },
        oi = esc(&pr.on_interrupt),
        to = pr
            .timeout_minutes
            .map(|m| format!("{m} min"))
            .unwrap_or_else(|| "none".into()),
        sec = if secrets.is_empty() {
            "none".into()
        } else {
            secrets.join(" ")
        },
        sch = if schedules.is_empty() {
            "none".into()
        } else {
            schedules.join(" ")
        },
        img = if images.is_empty() {
            "none".into()
        } else {
            images.join(" ")
        },
        runs = run_rows(&runs),
    );
    page(&pr.name, Some(&p), &body)
}

fn status_colour(s: Status) -> &'static str {
    match s {
        Status::Success => "#2e9d57",
        Status::Failure => "#cf3b3b",
        Status::Running => "#d99a00",
        Status::Queued => "#7b8794",
        Status::Skipped => "#a0a8b3",
        Status::Cancelled => "#5d6670",
        Status::Interrupted => "#8e44ad",
    }
}

/// The job graph: columns by depth in the `needs` DAG, an arrow per need.
pub fn graph_svg(jobs: &[&Job]) -> String {
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..jobs.len() + 1 {
        for j in jobs {
            let d = j
                .needs
                .iter()
                .filter_map(|n| depth.get(n.as_str()).map(|d| d + 1))
                .max()
                .unwrap_or(0);
            depth.insert(&j.name, d);
        }
    }
    let (w, h, gx, gy) = (160, 36, 60, 16);
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut pos: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for j in jobs {
        let d = depth.get(j.name.as_str()).copied().unwrap_or(0);
        let r = rows.entry(d).or_default();
        pos.insert(&j.name, (10 + d * (w + gx), 10 + *r * (h + gy)));
        *r += 1;
    }
    let width = 20 + (rows.len().max(1)) * (w + gx);
    let height = 20 + rows.values().copied().max().unwrap_or(1) * (h + gy) + h;
    let mut s = format!(
        "<svg id=graph xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=img aria-label=\"job graph\">"
    );
    for j in jobs {
        let (x, y) = pos[j.name.as_str()];
        for n in &j.needs {
            if let Some(&(nx, ny)) = pos.get(n.as_str()) {
                let (x1, y1, x2, y2) = (nx + w, ny + h / 2, x, y + h / 2);
                if y1 == y2 && x2 - x1 > gx {
                    // Skips a column on the same row: bend below the boxes in between.
                    let below = y1 + h + gy;
                    s.push_str(&format!(
                        "<path class=edge d=\"M{x1} {y1} C{} {below} {} {below} {x2} {y2}\" fill=\"none\" stroke=\"#8894a3\" stroke-width=\"2\"/>",
                        x1 + gx,
                        x2 - gx
                    ));
                } else {
                    s.push_str(&format!(
                        "<path class=edge d=\"M{x1} {y1} L{x2} {y2}\" fill=\"none\" stroke=\"#8894a3\" stroke-width=\"2\"/>"
                    ));
                }
            }
        }
    }
    for j in jobs {
        let (x, y) = pos[j.name.as_str()];
        s.push_str(&format!(
            "<g class=node data-job=\"{n}\"><title>{n}: {st}</title><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"6\" fill=\"{c}\"/>\
             <text x=\"{tx}\" y=\"{ty}\" fill=\"#fff\" font-size=\"13\" font-family=\"sans-serif\">{n}</text></g>",
            n = esc(&j.name),
            st = j.status,
            c = status_colour(j.status),
            tx = x + 10,
            ty = y + h / 2 + 5,
        ));
    }
    s.push_str("</svg>");
    s
}

const LIVE_JS: &str = r#"
var colours = {success:'#2e9d57',failure:'#cf3b3b',running:'#d99a00',queued:'#7b8794',skipped:'#a0a8b3',cancelled:'#5d6670',interrupted:'#8e44ad'};
function refresh(){
  fetch(location.pathname.replace('/runs/', '/api/runs/')).then(function(r){return r.json();}).then(function(run){
    var rs = document.getElementById('runstatus');
    if (rs) { rs.textContent = run.status; rs.className = 'st st-' + run.status; }
    run.jobs.forEach(function(j){
      var g = document.querySelector('#graph g.node[data-job="' + j.name + '"] rect');
      if (g) g.setAttribute('fill', colours[j.status] || '#7b8794');
    });
    if (run.status === 'queued' || run.status === 'running' || run.active) { setTimeout(refresh, 1000); return; }
    // The run ended after this page was rendered: show its final state (steps, images).
    var meta = document.getElementById('runmeta');
    if (meta && meta.dataset.done === 'false') location.reload();
  });
}
document.querySelectorAll('pre.log[data-src]').forEach(function(pre){
  var es = new EventSource(pre.dataset.src);
  es.addEventListener('line', function(e){
    var d = JSON.parse(e.data); var div = document.createElement('div');
    div.className = 'line ' + d.stream; div.innerHTML = d.html; pre.appendChild(div);
    if (pre.dataset.follow !== 'no') pre.scrollTop = pre.scrollHeight;
  });
  es.addEventListener('end', function(e){
    es.close(); var d = JSON.parse(e.data); pre.dataset.done = d.status;
    var st = document.getElementById('jobstatus-' + pre.dataset.job);
    if (st) { st.textContent = d.status; st.className = 'st st-' + d.status; }
    refresh();
  });
});
"#;

pub async fn run_page(State(app): AppState, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let p = match who(&app, &headers, &format!("/runs/{id}")) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(d) = app.db.run_detail(id) else {
        return page("not found", Some(&p), "<p>No such run.</p>");
    };
    let meta = app.db.run_meta(id).ok().flatten();
    let r = &d.run;
    let fork = r
        .context
        .pointer("/pull_request/fork")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let mut actions = String::new();
    if !r.status.is_finished() {
        actions.push_str(&format!(
            "<form class=inline method=post action=/runs/{id}/cancel><button id=cancel>cancel</button></form> "
        ));
    } else {
        actions.push_str(&format!(
            "<form class=inline method=post action=/runs/{id}/rerun><button id=rerun>re-run</button></form> "
        ));
        if matches!(
            r.status,
            Status::Failure | Status::Cancelled | Status::Interrupted
        ) {
            actions.push_str(&format!(
                "<form class=inline method=post action=/runs/{id}/rerun-failed><button id=rerun-failed>re-run failed jobs</button></form> "
            ));
        }
    }
    if fork && meta.as_ref().is_none_or(|m| m.approved_by.is_none()) && p.has("admin") {
        actions.push_str(&format!(
            "<form class=inline method=post action=/runs/{id}/approve><button id=approve>approve: run with secrets</button></form> \
             <span class=reason>pull request from a fork: ran without secrets</span>"
        ));
    }
    if let Some(by) = meta.as_ref().and_then(|m| m.approved_by.as_deref()) {
        actions.push_str(&format!(
            "<span class=reason>secrets approved by {}</span>",
            esc(by)
        ));
    }
    let jobs: Vec<&Job> = d.jobs.iter().map(|(j, _)| j).collect();
    let st = format!(
        "<span id=runstatus class=\"st st-{0}\">{0}</span>",
        r.status
    );
    let mut body = format!(
        "<h2>Run #{id} {st}</h2><div class=box><p><b>{cause}</b></p><p class=reason>{why}</p>\
         <p>project <a href=/projects/{pp}>{proj}</a> · {ev} · <code>{gr}</code> · <code>{sha}</code></p>\
         <p>created {c} · started {s} · finished {f}</p>{retry}<p>{actions}</p></div>\
         <h3>Jobs</h3><div class=box>{graph}</div>",
        cause = esc(&r.cause),
        why = esc(r.reason.as_deref().unwrap_or("")),
        pp = pct(&r.project),
        proj = esc(&r.project),
        ev = esc(&r.event),
        gr = esc(&r.git_ref),
        sha = esc(&r.sha),
        c = when(Some(r.created_at)),
        s = when(r.started_at),
        f = when(r.finished_at),
        retry = meta
            .as_ref()
            .and_then(|m| m.retry_of)
            .map(|o| format!("<p>re-run of <a href=/runs/{o}>#{o}</a></p>"))
            .unwrap_or_default(),
        graph = graph_svg(&jobs),
    );
    if !d.images.is_empty() {
        body.push_str("<h3>Images</h3><table><tr><th>image</th><th>job</th><th>digest</th><th>tags</th><th>pushed</th></tr>");
        for i in &d.images {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&i.image),
                esc(&i.job),
                esc(&i.digest),
                i.tags
                    .iter()
                    .map(|t| format!("<code>{}</code>", esc(t)))
                    .collect::<Vec<_>>()
                    .join("<br>"),
                if i.pushed {
                    "yes".to_string()
                } else {
                    format!("no: {}", esc(i.reason.as_deref().unwrap_or("")))
                }
            ));
        }
        body.push_str("</table>");
    }
    for (j, steps) in &d.jobs {
        let jn = pct(&j.name);
        body.push_str(&format!(
            "<div class=job id=\"job-{n}\"><h4>{n} <span id=\"jobstatus-{n}\" class=\"st st-{st}\">{st}</span> <span class=reason>{why}</span> <a href=/runs/{id}/jobs/{jn}/log>full log</a></h4><ol>",
            n = esc(&j.name),
            st = j.status,
            why = esc(j.reason.as_deref().unwrap_or("")),
        ));
        for s in steps {
            body.push_str(&format!(
                "<li>{} {}{}</li>",
                esc(&s.name),
                badge(s.status.as_str()),
                s.reason
                    .as_deref()
                    .map(|r| format!(" <span class=reason>{}</span>", esc(r)))
                    .unwrap_or_default()
            ));
        }
        body.push_str(&format!(
            "</ol><pre class=log id=\"log-{n}\" data-job=\"{n}\" data-src=\"/api/runs/{id}/jobs/{jn}/events\"></pre></div>",
            n = esc(&j.name),
        ));
    }
    body.push_str(&format!(
        "<div id=runmeta data-done=\"{}\"></div><script>{LIVE_JS}</script>",
        r.status.is_finished() && !app.is_active(id)
    ));
    page(&format!("run {id}"), Some(&p), &body)
}

/// A job's whole log as HTML (no script).
pub async fn job_log_page(
    State(app): AppState,
    headers: HeaderMap,
    Path((id, job)): Path<(i64, String)>,
) -> Response {
    let p = match who(&app, &headers, &format!("/runs/{id}/jobs/{job}/log")) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(j) = app.db.job_by_name(id, &job) else {
        return page("not found", Some(&p), "<p>No such job.</p>");
    };
    let mut s = format!(
        "<h2><a href=/runs/{id}>Run #{id}</a> · {} {}</h2><pre class=log style=\"max-height:none\">",
        esc(&job),
        badge(j.status.as_str())
    );
    let mut after = 0;
    loop {
        let lines = app.db.logs(j.id, after, 20_000).unwrap_or_default();
        if lines.is_empty() {
            break;
        }
        for l in &lines {
            s.push_str("<div>");
            s.push_str(&crate::ansi::to_html(&l.line));
            s.push_str("</div>");
            after = l.seq;
        }
    }
    s.push_str("</pre>");
    page(&format!("run {id} {job}"), Some(&p), &s)
}

fn back(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn error_page(p: &Principal, msg: &str) -> Response {
    let mut r = page(
        "error",
        Some(p),
        &format!("<p class=reason>{}</p>", esc(msg)),
    );
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    r
}

fn need(app: &App, headers: &HeaderMap, scope: &str, next: &str) -> Result<Principal, Response> {
    let p = who(app, headers, next)?;
    if !p.has(scope) {
        return Err(error_page(&p, &format!("you lack the {scope} scope")));
    }
    Ok(p)
}

pub async fn ui_cancel(State(app): AppState, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let p = match need(&app, &headers, "run", &format!("/runs/{id}")) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let _ = app.cancel(id, &format!("cancelled by {}", p.user));
    back(&format!("/runs/{id}"))
}

async fn rerun_common(
    app: Arc<App>,
    headers: HeaderMap,
    id: i64,
    how: triggers::Rerun,
) -> Response {
    let scope = if how == triggers::Rerun::Approve {
        "admin"
    } else {
        "run"
    };
    let p = match need(&app, &headers, scope, &format!("/runs/{id}")) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let user = p.user.clone();
    let app2 = app.clone();
    match tokio::task::spawn_blocking(move || triggers::rerun(&app2, id, &user, how)).await {
        Ok(Ok(new)) => back(&format!("/runs/{new}")),
        Ok(Err(e)) => error_page(&p, &e.message),
        Err(e) => error_page(&p, &e.to_string()),
    }
}

pub async fn ui_rerun(State(app): AppState, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    rerun_common(app, headers, id, triggers::Rerun::All).await
}

pub async fn ui_rerun_failed(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    rerun_common(app, headers, id, triggers::Rerun::Failed).await
}

pub async fn ui_approve(State(app): AppState, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    rerun_common(app, headers, id, triggers::Rerun::Approve).await
}

#[derive(Deserialize)]
pub struct TriggerForm {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    job: Option<String>,
}

pub async fn ui_trigger(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let p = match need(&app, &headers, "run", &format!("/projects/{name}")) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let f: TriggerForm = serde_urlencoded::from_bytes(&body).unwrap_or(TriggerForm {
        git_ref: None,
        job: None,
    });
    let Ok(Some(project)) = app.db.project(&name) else {
        return error_page(&p, "no such project");
    };
    let user = p.user.clone();
    let app2 = app.clone();
    let r = tokio::task::spawn_blocking(move || {
        triggers::manual(
            &app2,
            &project,
            f.git_ref.as_deref().filter(|s| !s.is_empty()),
            f.job.as_deref().filter(|s| !s.is_empty()),
            &user,
        )
    })
    .await;
    match r {
        Ok(Ok(id)) => back(&format!("/runs/{id}")),
        Ok(Err(e)) => error_page(&p, &e.message),
        Err(e) => error_page(&p, &e.to_string()),
    }
}

pub async fn chains_page(State(app): AppState, headers: HeaderMap) -> Response {
    let p = match who(&app, &headers, "/chains") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut s = String::from("<h2>Build chains</h2>");
    for c in app.db.chains().unwrap_or_default() {
        let st = chains::steps(&c);
        let cur = c.current_step.unwrap_or(-1);
        let mut boxes = String::new();
        for (i, step) in st.iter().enumerate() {
            let i = i as i64;
            let class = if c.status == "success" || i < cur {
                "done"
            } else if i == cur && c.status == "failure" {
                "failed"
            } else if i == cur && matches!(c.status.as_str(), "running" | "waiting") {
                "current"
            } else {
                ""
            };
            boxes.push_str(&format!(
                "<span class=\"{class}\">{}</span>",
                esc(&step.tag)
            ));
        }
        let runs: Vec<String> = app
            .db
            .chain_runs(c.id, 10)
            .unwrap_or_default()
            .into_iter()
            .map(|(m, r)| {
                format!(
                    "<a href=/runs/{id}>#{id}</a> step {} {}",
                    m.chain_step.unwrap_or(0) + 1,
                    badge(r.status.as_str()),
                    id = r.id
                )
            })
            .collect();
        s.push_str(&format!(
            "<div class=box id=\"chain-{n}\"><h3>{n} {st}</h3><p>project <a href=/projects/{pp}>{proj}</a> · <code>{repo}</code> · delay {delay}s{cron}</p>\
             <p class=chain>{boxes}</p><p class=reason>{why}</p><p>cause: {cause} · coalesced starts: {co}</p>\
             <form method=post action=/chains/{n}/start><button>start</button></form><p>{runs}</p></div>",
            n = esc(&c.name),
            st = badge(&c.status),
            pp = pct(&c.project),
            proj = esc(&c.project),
            repo = esc(&c.repository),
            delay = c.delay_seconds,
            cron = c
                .cron
                .as_deref()
                .map(|x| format!(" · schedule <code>{}</code>", esc(x)))
                .unwrap_or_default(),
            why = esc(c.reason.as_deref().unwrap_or("")),
            cause = esc(c.cause.as_deref().unwrap_or("")),
            co = c.coalesced,
            runs = runs.join(" · "),
        ));
    }
    page("chains", Some(&p), &s)
}

pub async fn ui_chain_start(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let p = match need(&app, &headers, "run", "/chains") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let user = p.user.clone();
    let app2 = app.clone();
    let r = tokio::task::spawn_blocking(move || {
        chains::start(&app2, &name, 0, &format!("started by {user}"))
    })
    .await;
    match r {
        Ok(Ok(_)) => back("/chains"),
        Ok(Err(e)) => error_page(&p, &e.message),
        Err(e) => error_page(&p, &e.to_string()),
    }
}

#[derive(Deserialize)]
pub struct RepoQuery {
    repository: Option<String>,
}

pub async fn registry_page(
    State(app): AppState,
    headers: HeaderMap,
    Query(q): Query<RepoQuery>,
) -> Response {
    let p = match who(&app, &headers, "/registry") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let host = url::Url::parse(&app.public_url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                format!(
                    "{h}{}",
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
        })
        .unwrap_or_default();
    let storage = app.registry.storage();
    let mut s = String::new();
    match q.repository {
        Some(repo) => {
            s.push_str(&format!(
                "<h2><a href=/registry>Registry</a> · {}</h2><table><tr><th>tag</th><th>digest</th><th>pull</th></tr>",
                esc(&repo)
            ));
            for (t, d) in storage.tag_map(&repo).unwrap_or_default() {
                s.push_str(&format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td><code>{}/{}:{}</code></td></tr>",
                    esc(&t),
                    esc(&d.to_string()),
                    esc(&host),
                    esc(&repo),
                    esc(&t)
                ));
            }
            s.push_str("</table>");
        }
        None => {
            s.push_str("<h2>Registry</h2><table><tr><th>repository</th><th>tags</th></tr>");
            for repo in storage.repositories().unwrap_or_default() {
                let n = storage.tags(&repo).map(|t| t.len()).unwrap_or(0);
                s.push_str(&format!(
                    "<tr><td><a href=\"/registry?repository={}\">{}</a></td><td>{n}</td></tr>",
                    pct(&repo),
                    esc(&repo)
                ));
            }
            s.push_str(&format!(
                "</table><p class=reason>Push with <code>drydock push {}/REPO:TAG</code>.</p>",
                esc(&host)
            ));
        }
    }
    page("registry", Some(&p), &s)
}
