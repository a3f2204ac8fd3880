//! The event a run is for (push, pull_request, schedule, image, manual) and the `github`
//! expression context built from it. Deriving an event from a checkout is [`crate::git`].

use std::collections::BTreeMap;

use drydock_expr::Value;
use serde::{Deserialize, Serialize};

/// What triggered a run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Event {
    /// `push`, `pull_request`, `schedule`, `image` or `manual`.
    pub name: String,
    /// The full ref: `refs/heads/main`, `refs/tags/v1.2.3`, `refs/pull/7/merge`.
    pub git_ref: String,
    /// The commit (40 hex).
    pub sha: String,
    /// The repository's default branch (`main`), for `latest=auto` and `{{is_default_branch}}`.
    pub default_branch: Option<String>,
    pub pull_request: Option<PullRequest>,
    /// The commit time (seconds since the epoch): `org.opencontainers.image.created`, so runs
    /// are reproducible.
    pub commit_time: Option<i64>,
    /// `git describe --tags --always` of the commit, for `type=describe`.
    pub describe: Option<String>,
    /// `owner/name` when known.
    pub repository: Option<String>,
    /// The repository's web or clone URL (`org.opencontainers.image.source`).
    pub repository_url: Option<String>,
    /// Who caused it.
    pub actor: Option<String>,
    /// For `schedule`: the cron expression that fired.
    pub schedule: Option<String>,
    /// For `image`: the upstream image whose digest changed.
    pub image: Option<String>,
}

/// The pull request of a `pull_request` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    /// The branch it merges into (`main`).
    pub base_ref: String,
    /// The branch it comes from.
    pub head_ref: String,
    /// From a fork: gets no secrets.
    pub fork: bool,
}

impl Event {
    /// The short name of the ref: `main` for `refs/heads/main`, `v1` for `refs/tags/v1`,
    /// `7/merge` for `refs/pull/7/merge` (as GitHub's `github.ref_name`).
    pub fn ref_name(&self) -> &str {
        let r = &self.git_ref;
        r.strip_prefix("refs/heads/")
            .or_else(|| r.strip_prefix("refs/tags/"))
            .or_else(|| r.strip_prefix("refs/pull/"))
            .unwrap_or(r)
    }

    /// The branch of a push (`None` for tags and pull requests).
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    pub fn tag(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/tags/")
    }

    /// `branch`, `tag` or `pull` (GitHub's `ref_type` is `branch` or `tag`).
    pub fn ref_type(&self) -> &'static str {
        if self.git_ref.starts_with("refs/tags/") {
            "tag"
        } else {
            "branch"
        }
    }

    /// One line for people: "push to main (abc1234)".
    pub fn describe_cause(&self) -> String {
        let short: String = self.sha.chars().take(7).collect();
        match (&self.name[..], &self.pull_request) {
            ("pull_request", Some(pr)) => format!(
                "pull request #{} {} -> {} ({short})",
                pr.number, pr.head_ref, pr.base_ref
            ),
            ("push", _) => match (self.branch(), self.tag()) {
                (Some(b), _) => format!("push to {b} ({short})"),
                (_, Some(t)) => format!("push of tag {t} ({short})"),
                _ => format!("push of {} ({short})", self.git_ref),
            },
            ("schedule", _) => format!(
                "schedule {} ({short})",
                self.schedule.as_deref().unwrap_or("")
            ),
            ("image", _) => format!(
                "upstream image {} changed ({short})",
                self.image.as_deref().unwrap_or("")
            ),
            (name, _) => format!("{name} on {} ({short})", self.ref_name()),
        }
    }

    /// The `github` expression context: `event_name`, `ref`, `ref_name`, `ref_type`, `sha`,
    /// `head_ref`, `base_ref`, `repository`, `actor`, `event.pull_request.*`, plus
    /// `workspace`, `run_id` and `job` given by the engine.
    pub fn github_context(&self, extra: &[(&str, Value)]) -> Value {
        let s = |v: &str| Value::string(v);
        let mut m: BTreeMap<String, Value> = BTreeMap::new();
        m.insert("event_name".into(), s(&self.name));
        m.insert("ref".into(), s(&self.git_ref));
        m.insert("ref_name".into(), s(self.ref_name()));
        m.insert("ref_type".into(), s(self.ref_type()));
        m.insert("sha".into(), s(&self.sha));
        m.insert(
            "repository".into(),
            s(self.repository.as_deref().unwrap_or("")),
        );
        m.insert("actor".into(), s(self.actor.as_deref().unwrap_or("")));
        m.insert(
            "default_branch".into(),
            s(self.default_branch.as_deref().unwrap_or("")),
        );
        let (head, base) = match &self.pull_request {
            Some(pr) => (pr.head_ref.as_str(), pr.base_ref.as_str()),
            None => ("", ""),
        };
        m.insert("head_ref".into(), s(head));
        m.insert("base_ref".into(), s(base));
        let mut event: BTreeMap<String, Value> = BTreeMap::new();
        if let Some(pr) = &self.pull_request {
            event.insert(
                "pull_request".into(),
                Value::from_pairs([
                    ("number", Value::Number(pr.number as f64)),
                    ("head", Value::from_pairs([("ref", s(&pr.head_ref))])),
                    ("base", Value::from_pairs([("ref", s(&pr.base_ref))])),
                    ("fork", Value::Bool(pr.fork)),
                ]),
            );
            event.insert("number".into(), Value::Number(pr.number as f64));
        }
        if let Some(c) = &self.schedule {
            event.insert("schedule".into(), s(c));
        }
        if let Some(i) = &self.image {
            event.insert("image".into(), s(i));
        }
        event.insert("ref".into(), s(&self.git_ref));
        m.insert("event".into(), Value::object(event));
        for (k, v) in extra {
            m.insert((*k).to_string(), v.clone());
        }
        Value::object(m)
    }

    /// The `GITHUB_*` variables (and drydock's own) every step sees.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("GITHUB_EVENT_NAME".to_string(), self.name.clone()),
            ("GITHUB_REF".to_string(), self.git_ref.clone()),
            ("GITHUB_REF_NAME".to_string(), self.ref_name().to_string()),
            ("GITHUB_REF_TYPE".to_string(), self.ref_type().to_string()),
            ("GITHUB_SHA".to_string(), self.sha.clone()),
        ];
        if let Some(pr) = &self.pull_request {
            v.push(("GITHUB_HEAD_REF".into(), pr.head_ref.clone()));
            v.push(("GITHUB_BASE_REF".into(), pr.base_ref.clone()));
        }
        if let Some(r) = &self.repository {
            v.push(("GITHUB_REPOSITORY".into(), r.clone()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drydock_expr::{Env, Template};

    fn push(r: &str) -> Event {
        Event {
            name: "push".into(),
            git_ref: r.into(),
            sha: "a".repeat(40),
            ..Default::default()
        }
    }

    #[test]
    fn ref_names() {
        assert_eq!(push("refs/heads/feature/x").ref_name(), "feature/x");
        assert_eq!(push("refs/tags/v1.0").ref_name(), "v1.0");
        assert_eq!(push("refs/tags/v1.0").ref_type(), "tag");
        assert_eq!(push("refs/heads/main").branch(), Some("main"));
        assert_eq!(push("refs/pull/7/merge").ref_name(), "7/merge");
    }

    #[test]
    fn github_context_answers_expressions() {
        let mut e = push("refs/pull/7/merge");
        e.name = "pull_request".into();
        e.pull_request = Some(PullRequest {
            number: 7,
            base_ref: "main".into(),
            head_ref: "feat".into(),
            fork: false,
        });
        let ctx = Value::from_pairs([("github", e.github_context(&[]))]);
        let t = Template::parse(
            "${{ github.event_name }} ${{ github.event.pull_request.number }} ${{ github.base_ref }}",
        )
        .unwrap();
        assert_eq!(
            t.eval_string(&Env::new(&ctx)).unwrap(),
            "pull_request 7 main"
        );
        assert_eq!(e.describe_cause(), "pull request #7 feat -> main (aaaaaaa)");
    }
}
