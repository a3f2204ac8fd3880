//! Secret groups: which jobs get which values. A group's `allow` rules and the fork rule are
//! checked before a job starts; a refused job fails with the reason. Values come from the
//! caller (`--secret-file` or the environment locally, the encrypted store on a server).

use std::collections::BTreeMap;

use drydock_secret::{Masker, Secret};

use crate::event::Event;
use crate::plan::{Pipeline, SecretGroup};

/// Secret values by key.
pub type SecretValues = BTreeMap<String, Secret>;

/// Reads the values of every key of every group in `pipeline`: from `file` (dotenv text) first,
/// then from the environment through `env`. Keys with no value are left out (a job asking for
/// them fails, naming them).
pub fn gather(
    pipeline: &Pipeline,
    file: Option<&SecretValues>,
    env: impl Fn(&str) -> Option<String>,
) -> SecretValues {
    let mut out = SecretValues::new();
    for g in pipeline.secrets.values() {
        for k in &g.keys {
            if out.contains_key(k) {
                continue;
            }
            if let Some(v) = file.and_then(|f| f.get(k)) {
                out.insert(k.clone(), v.clone());
            } else if let Some(v) = env(k) {
                out.insert(k.clone(), Secret::new(v));
            }
        }
    }
    out
}

/// A masker for every value of the run (all groups, whichever job asks: masking a value a job
/// could not read costs nothing).
pub fn masker(values: &SecretValues) -> Masker {
    let mut m = Masker::new();
    for v in values.values() {
        m.add(v.expose());
    }
    m
}

/// Every key of every group (what host-shell jobs must not inherit from the environment).
pub fn all_keys(pipeline: &Pipeline) -> Vec<String> {
    let mut keys: Vec<String> = pipeline
        .secrets
        .values()
        .flat_map(|g| g.keys.iter().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Checks that a job may have the groups it lists for this event, and returns their values.
/// `Err` is the reason the job is refused.
pub fn for_job(
    pipeline: &Pipeline,
    project: &str,
    job: &str,
    groups: &[String],
    event: &Event,
    values: &SecretValues,
) -> Result<Vec<(String, Secret)>, String> {
    let mut out = Vec::new();
    for name in groups {
        let group: &SecretGroup = pipeline.secrets.get(name).ok_or_else(|| {
            format!("job {job} asks for secret group {name}, which is not defined in secrets:")
        })?;
        if let Some(pr) = &event.pull_request
            && pr.fork
        {
            return Err(format!(
                "secret group {name} refused: pull request #{} comes from a fork, and forks get no secrets",
                pr.number
            ));
        }
        if let Some(allow) = &group.allow
            && let Err(why) = allow(event, job, project)
        {
            return Err(format!("job {job} refused: {why}"));
        }
        let mut missing = Vec::new();
        for k in &group.keys {
            match values.get(k) {
                Some(v) => out.push((k.clone(), v.clone())),
                None => missing.push(k.as_str()),
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "secret group {name}: no value for {} (give it in --secret-file or the environment)",
                missing.join(", ")
            ));
        }
    }
    Ok(out)
}

/// The key of the first secret whose value appears in `text`, if any.
pub fn find_secret_in<'a>(values: &'a [(String, Secret)], text: &str) -> Option<&'a str> {
    values
        .iter()
        .find(|(_, v)| v.expose().len() >= 3 && text.contains(v.expose()))
        .map(|(k, _)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::PullRequest;
    use std::sync::Arc;

    fn pipeline() -> Pipeline {
        let mut p = Pipeline::default();
        p.secrets.insert(
            "hub".into(),
            SecretGroup {
                name: "hub".into(),
                keys: vec!["HUB_USER".into(), "HUB_TOKEN".into()],
                allow: Some(Arc::new(|e: &Event, _job: &str, _project: &str| {
                    if e.branch() == Some("main") {
                        Ok(())
                    } else {
                        Err(format!("secret group hub is not allowed on {}", e.git_ref))
                    }
                })),
            },
        );
        p
    }

    fn values() -> SecretValues {
        [
            ("HUB_USER".to_string(), Secret::new("ann")),
            ("HUB_TOKEN".to_string(), Secret::new("s3cr3t-token")),
        ]
        .into_iter()
        .collect()
    }

    fn push(r: &str) -> Event {
        Event {
            name: "push".into(),
            git_ref: r.into(),
            sha: "0".repeat(40),
            ..Default::default()
        }
    }

    #[test]
    fn allow_rules_and_forks() {
        let p = pipeline();
        let ok = for_job(
            &p,
            "proj",
            "pub",
            &["hub".into()],
            &push("refs/heads/main"),
            &values(),
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        let err = for_job(
            &p,
            "proj",
            "pub",
            &["hub".into()],
            &push("refs/heads/x"),
            &values(),
        )
        .unwrap_err();
        assert!(
            err.contains("job pub refused: secret group hub is not allowed"),
            "{err}"
        );
        let mut pr = push("refs/heads/main");
        pr.pull_request = Some(PullRequest {
            number: 3,
            base_ref: "main".into(),
            head_ref: "f".into(),
            fork: true,
        });
        let err = for_job(&p, "proj", "pub", &["hub".into()], &pr, &values()).unwrap_err();
        assert!(err.contains("fork"), "{err}");
        let mut some = values();
        some.remove("HUB_TOKEN");
        let err = for_job(
            &p,
            "proj",
            "pub",
            &["hub".into()],
            &push("refs/heads/main"),
            &some,
        )
        .unwrap_err();
        assert!(err.contains("no value for HUB_TOKEN"), "{err}");
    }

    #[test]
    fn gather_prefers_the_file() {
        let p = pipeline();
        let file: SecretValues = [("HUB_USER".to_string(), Secret::new("from-file"))]
            .into_iter()
            .collect();
        let got = gather(&p, Some(&file), |k| {
            (k == "HUB_TOKEN" || k == "HUB_USER").then(|| format!("env-{k}"))
        });
        assert_eq!(got["HUB_USER"].expose(), "from-file");
        assert_eq!(got["HUB_TOKEN"].expose(), "env-HUB_TOKEN");
        let m = masker(&got);
        assert_eq!(m.mask("x env-HUB_TOKEN y"), "x *** y");
    }
}
