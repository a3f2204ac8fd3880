//! Commit statuses back to the forge (GitHub, Gitea/Forgejo, GitLab statuses APIs) with a link
//! to the run, when the project has a token for it. Calls are made in the background; a
//! failure is logged, never fails the run.

use drydock_db::{Project, Status};

use crate::app::App;

/// The forge's state word for a run status.
fn state(forge: &str, s: Status) -> &'static str {
    match forge {
        "gitlab" => match s {
            Status::Queued => "pending",
            Status::Running => "running",
            Status::Success | Status::Skipped => "success",
            Status::Cancelled => "canceled",
            Status::Failure | Status::Interrupted => "failed",
        },
        _ => match s {
            Status::Queued | Status::Running => "pending",
            Status::Success | Status::Skipped => "success",
            Status::Failure => "failure",
            Status::Cancelled | Status::Interrupted => "error",
        },
    }
}

fn description(s: Status) -> &'static str {
    match s {
        Status::Queued => "queued",
        Status::Running => "running",
        Status::Success => "passed",
        Status::Skipped => "skipped",
        Status::Failure => "failed",
        Status::Cancelled => "cancelled",
        Status::Interrupted => "interrupted",
    }
}

/// Reports the status of `run` for `sha`, if the project has a status token.
pub fn report(app: &App, project: &Project, run: i64, sha: &str, status: Status) {
    let (Some(token), Some(repo)) = (&project.status_token, &project.status_repo) else {
        return;
    };
    let token = match app.seal.open_value(token) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(project = %project.name, error = %e, "status token cannot be opened");
            return;
        }
    };
    let forge = project.forge.as_str();
    let api = project.status_api.clone().unwrap_or_else(|| match forge {
        "gitlab" => "https://gitlab.com".into(),
        _ => "https://api.github.com".into(),
    });
    let api = api.trim_end_matches('/').to_string();
    let st = state(forge, status);
    let target = app.run_url(run);
    let context = format!("drydock/{}", project.name);
    let desc = format!("run {run} {}", description(status));
    let req = match forge {
        "gitlab" => {
            let id = crate::util::pct(repo);
            let Ok(mut url) =
                url::Url::parse(&format!("{api}/api/v4/projects/{id}/statuses/{sha}"))
            else {
                return;
            };
            url.query_pairs_mut()
                .append_pair("state", st)
                .append_pair("target_url", &target)
                .append_pair("name", &context)
                .append_pair("description", &desc);
            app.http.post(url).header("PRIVATE-TOKEN", token)
        }
        "gitea" | "forgejo" => {
            let url = format!("{api}/api/v1/repos/{repo}/statuses/{sha}");
            app.http
                .post(&url)
                .header("Authorization", format!("token {token}"))
                .header("Content-Type", "application/json")
                .body(
                    serde_json::json!({"state": st, "target_url": target, "description": desc, "context": context})
                        .to_string(),
                )
        }
        "github" => {
            let url = format!("{api}/repos/{repo}/statuses/{sha}");
            app.http
                .post(&url)
                .header("Authorization", format!("Bearer {token}"))
                .header("Accept", "application/vnd.github+json")
                .header("User-Agent", "drydock")
                .header("Content-Type", "application/json")
                .body(
                    serde_json::json!({"state": st, "target_url": target, "description": desc, "context": context})
                        .to_string(),
                )
        }
        _ => return,
    };
    let Ok(built) = req.build() else { return };
    let url = built.url().to_string();
    app.status_log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((url, st.to_string()));
    // One queue, in order: a run's "pending" never lands after its "success".
    let _ = app.status_tx.send((project.name.clone(), built));
}

/// Sends queued status calls one after the other.
pub(crate) async fn sender(
    http: reqwest::Client,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(String, reqwest::Request)>,
) {
    while let Some((project, req)) = rx.recv().await {
        let url = req.url().to_string();
        match http.execute(req).await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::warn!(project = %project, url = %url, status = %r.status(), "commit status refused")
            }
            Err(e) => {
                tracing::warn!(project = %project, url = %url, error = %e, "commit status failed")
            }
        }
    }
}
