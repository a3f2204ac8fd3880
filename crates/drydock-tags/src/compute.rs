//! Tags and labels for one event.

use std::collections::BTreeMap;

use drydock_diagnostics::Span;

use crate::error::TagsError;
use crate::handlebars::{self, Var};
use crate::pep440::Pep440;
use crate::sanitize::{sanitize_repository, sanitize_tag};
use crate::semver::SemVer;
use crate::spec::{Flavor, Latest, RefEvent, ShaFormat, TagKind, TagRule, TagsSpec};
use crate::time::{TimeZone, format_moment, rfc3339_millis};

/// What the tags are computed from. Everything that would need git or a clock is a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagEvent {
    /// `push`, `pull_request`, `schedule`, `image`, `manual` (or `workflow_dispatch`).
    pub event_name: String,
    /// `refs/heads/main`, `refs/tags/v1.2.3`, `refs/pull/2/merge`.
    pub git_ref: String,
    /// The full commit SHA.
    pub sha: String,
    pub default_branch: Option<String>,
    /// The pull request number (otherwise read from a `refs/pull/N/...` ref).
    pub pr_number: Option<u64>,
    /// The pull request's base branch (`{{base_ref}}`).
    pub base_ref: Option<String>,
    /// Commit time (Unix seconds): `org.opencontainers.image.created` and `{{commit_date}}`.
    pub commit_time: Option<i64>,
    /// "Now" for `{{date}}` (a schedule's tick); falls back to the commit time.
    pub now: Option<i64>,
    /// `git describe --tags --always` output, for `type=describe`.
    pub describe: Option<String>,
    /// Repository URL: `org.opencontainers.image.source` and `.url`.
    pub repo_url: Option<String>,
    /// Repository name: `org.opencontainers.image.title`.
    pub repo_name: Option<String>,
    pub description: Option<String>,
    pub licenses: Option<String>,
    /// Length of short SHAs (`type=sha`, `{{sha}}`); 0 means the default, 7.
    pub short_sha_length: usize,
}

impl TagEvent {
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    pub fn tag(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/tags/")
    }

    pub fn is_pull_request(&self) -> bool {
        matches!(
            self.event_name.as_str(),
            "pull_request" | "pull_request_target"
        )
    }

    /// The PR number: the field, or `N` of `refs/pull/N/merge`.
    pub fn pr(&self) -> Option<u64> {
        self.pr_number.or_else(|| {
            let rest = self.git_ref.strip_prefix("refs/pull/")?;
            rest.split('/').next()?.parse().ok()
        })
    }

    pub fn is_default_branch(&self) -> bool {
        matches!((self.branch(), self.default_branch.as_deref()), (Some(b), Some(d)) if b == d)
    }

    pub fn short_sha(&self) -> &str {
        let n = if self.short_sha_length == 0 {
            7
        } else {
            self.short_sha_length
        };
        let end = self
            .sha
            .char_indices()
            .nth(n)
            .map_or(self.sha.len(), |(i, _)| i);
        &self.sha[..end]
    }
}

/// The computed tags and labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// The image version: the first tag (highest priority), as metadata-action's `version`.
    pub version: Option<String>,
    /// Tags in order (highest priority first, `latest` last), de-duplicated.
    pub tags: Vec<String>,
    /// `repository:tag` for every repository (lower-cased), each repository's tags in order.
    pub refs: Vec<String>,
    /// OCI labels.
    pub labels: BTreeMap<String, String>,
    /// Whether `latest` is among the tags.
    pub latest: bool,
}

struct Ctx<'a> {
    ev: &'a TagEvent,
}

impl Ctx<'_> {
    fn global(&self, v: &Var) -> Result<Option<String>, TagsError> {
        let ev = self.ev;
        Ok(Some(match v.name.as_str() {
            "branch" => ev.branch().unwrap_or("").to_string(),
            "tag" => ev.tag().unwrap_or("").to_string(),
            "sha" => ev.short_sha().to_string(),
            "base_ref" => ev.base_ref.clone().unwrap_or_default(),
            "is_default_branch" => ev.is_default_branch().to_string(),
            "date" | "commit_date" => {
                let t = if v.name == "date" {
                    ev.now.or(ev.commit_time)
                } else {
                    ev.commit_time.or(ev.now)
                };
                let Some(t) = t else {
                    return Err(TagsError::new(
                        format!("`{{{{{}}}}}` needs a time, and none was given", v.name),
                        v.span,
                    ));
                };
                let tz = match v.kwarg("tz") {
                    Some(z) => TimeZone::parse(z).map_err(|m| TagsError::new(m, v.span))?,
                    None => TimeZone::UTC,
                };
                format_moment(v.args.first().map_or("", String::as_str), t, tz)
            }
            _ => return Ok(None),
        }))
    }

    /// Renders an attribute with global expressions (and `extra` variables first).
    fn render(
        &self,
        text: &str,
        span: Span,
        extra: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, TagsError> {
        let parts = handlebars::parse(text, 0).map_err(|e| TagsError::new(e.message, span))?;
        handlebars::render(&parts, &mut |v: &Var| {
            if let Some(s) = extra(&v.name) {
                return Ok(s);
            }
            match self.global(v) {
                Ok(Some(s)) => Ok(s),
                Ok(None) => Err(TagsError::new(
                    format!("unknown expression `{{{{{}}}}}`", v.name),
                    span,
                )),
                Err(e) => Err(TagsError { span, ..e }),
            }
        })
    }
}

fn none(_: &str) -> Option<String> {
    None
}

/// The pattern of a `type=semver` or `type=pep440` tag: a pre-release (for PEP 440 also a post-
/// or dev-release) only gets `{{version}}`, or `{{raw}}` when the pattern uses it.
fn version_pattern(pattern: &str, prerelease: bool) -> &str {
    if !prerelease {
        pattern
    } else if pattern.contains("{{raw}}") {
        "{{raw}}"
    } else {
        "{{version}}"
    }
}

struct Candidate {
    priority: i64,
    tag: String,
}

/// Computes the tags and labels for `event`. `repositories` are the image names the tags are
/// attached to; `extra_labels` (`key=value`, global expressions allowed) override the generated
/// OCI labels. Errors (an `enable` that is not true/false, a bad time zone) are all reported.
pub fn compute(
    spec: &TagsSpec,
    flavor: &Flavor,
    event: &TagEvent,
    repositories: &[String],
    extra_labels: &[(String, String)],
) -> Result<Output, Vec<TagsError>> {
    let cx = Ctx { ev: event };
    let mut errors = Vec::new();
    let mut cands: Vec<Candidate> = Vec::new();
    let mut want_latest = false;
    for rule in &spec.rules {
        match rule_tags(&cx, rule, flavor) {
            Ok(Some((values, latest))) => {
                want_latest |= latest;
                for v in values {
                    cands.push(Candidate {
                        priority: rule.priority,
                        tag: v,
                    });
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    let fl_prefix = cx.render(&flavor.prefix, Span::default(), &none);
    let fl_suffix = cx.render(&flavor.suffix, Span::default(), &none);
    let (fl_prefix, fl_suffix) = match (fl_prefix, fl_suffix) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(e), _) | (_, Err(e)) => {
            errors.push(e);
            (String::new(), String::new())
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    // Sort by priority (stable: equal priorities keep the input order), then de-duplicate.
    cands.sort_by_key(|c| std::cmp::Reverse(c.priority));
    let mut tags: Vec<String> = Vec::new();
    for c in cands {
        if !c.tag.is_empty() && !tags.contains(&c.tag) {
            tags.push(c.tag);
        }
    }
    let version = tags.first().cloned();
    let latest = match flavor.latest {
        Latest::True => true,
        Latest::False => false,
        Latest::Auto => want_latest,
    };
    if latest {
        let mut l = String::from("latest");
        if flavor.prefix_on_latest {
            l = format!("{fl_prefix}{l}");
        }
        if flavor.suffix_on_latest {
            l.push_str(&fl_suffix);
        }
        let l = sanitize_tag(&l);
        if !l.is_empty() && !tags.contains(&l) {
            tags.push(l);
        }
    }
    let mut refs = Vec::new();
    for repo in repositories {
        let repo = sanitize_repository(repo);
        if repo.is_empty() {
            continue;
        }
        for t in &tags {
            refs.push(format!("{repo}:{t}"));
        }
    }
    let mut labels = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            labels.insert(format!("org.opencontainers.image.{k}"), v);
        }
    };
    put("title", event.repo_name.clone());
    put("description", event.description.clone());
    put("url", event.repo_url.clone());
    put("source", event.repo_url.clone());
    put("version", version.clone());
    put("created", event.commit_time.map(rfc3339_millis));
    put(
        "revision",
        (!event.sha.is_empty()).then(|| event.sha.clone()),
    );
    put("licenses", event.licenses.clone());
    let mut errors = Vec::new();
    for (k, v) in extra_labels {
        match cx.render(v, Span::default(), &none) {
            Ok(v) => {
                labels.insert(k.clone(), v);
            }
            Err(e) => errors.push(TagsError::new(format!("label {k}: {}", e.message), e.span)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Output {
        version,
        tags,
        refs,
        labels,
        latest,
    })
}

/// The tags one rule gives (already prefixed, suffixed and sanitised) and whether it asks for
/// `latest`; `None` when the rule does not apply to this event or is disabled.
fn rule_tags(
    cx: &Ctx<'_>,
    rule: &TagRule,
    flavor: &Flavor,
) -> Result<Option<(Vec<String>, bool)>, TagsError> {
    let ev = cx.ev;
    let enable = cx.render(&rule.enable, rule.span_of("enable"), &none)?;
    match enable.trim() {
        "true" => {}
        "false" => return Ok(None),
        other => {
            return Err(TagsError::new(
                format!("enable must be true or false, found `{other}`"),
                rule.span_of("enable"),
            )
            .hint(
                "enable={{is_default_branch}} or enable=${{ github.ref == 'refs/heads/main' }}",
            ));
        }
    }
    // The value the version types read: `value=` (with global expressions) or the git tag.
    let source = || -> Result<Option<String>, TagsError> {
        if let Some(v) = rule.value.as_deref().filter(|v| !v.is_empty()) {
            return Ok(Some(cx.render(v, rule.span_of("value"), &none)?));
        }
        Ok(ev.tag().map(str::to_string))
    };
    let (value, latest): (String, bool) = match rule.kind {
        TagKind::Schedule => {
            if ev.event_name != "schedule" {
                return Ok(None);
            }
            let pattern = rule
                .pattern
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("nightly");
            (cx.render(pattern, rule.span_of("pattern"), &none)?, false)
        }
        TagKind::Semver => {
            let Some(raw) = source()? else {
                return Ok(None);
            };
            let Some(v) = SemVer::parse(&raw) else {
                return Ok(None);
            };
            let pattern = rule.pattern.as_deref().unwrap_or("{{version}}");
            let pre = v.is_prerelease();
            let pattern = version_pattern(pattern, pre);
            let vars = |name: &str| -> Option<String> {
                Some(match name {
                    "raw" => raw.clone(),
                    "version" => v.version(),
                    "major" => v.major.to_string(),
                    "minor" => v.minor.to_string(),
                    "patch" => v.patch.to_string(),
                    _ => return None,
                })
            };
            (cx.render(pattern, rule.span_of("pattern"), &vars)?, !pre)
        }
        TagKind::Pep440 => {
            let Some(raw) = source()? else {
                return Ok(None);
            };
            let Some(v) = Pep440::parse(&raw) else {
                return Ok(None);
            };
            let pattern = rule.pattern.as_deref().unwrap_or("{{version}}");
            let special = v.is_special();
            let pattern = version_pattern(pattern, special);
            let vars = |name: &str| -> Option<String> {
                Some(match name {
                    "raw" => raw.clone(),
                    "version" => v.version(),
                    "major" => v.major().to_string(),
                    "minor" => v.minor().to_string(),
                    "patch" => v.patch().to_string(),
                    _ => return None,
                })
            };
            (
                cx.render(pattern, rule.span_of("pattern"), &vars)?,
                !special,
            )
        }
        TagKind::Match => {
            let Some(raw) = source()? else {
                return Ok(None);
            };
            let Some(re) = &rule.regex else {
                return Ok(None);
            };
            let Some(caps) = re.captures(&raw) else {
                return Ok(None);
            };
            let Some(m) = caps.get(rule.group) else {
                return Ok(None);
            };
            (m.as_str().to_string(), true)
        }
        TagKind::Edge => {
            let Some(branch) = ev.branch() else {
                return Ok(None);
            };
            let want = rule
                .branch
                .as_deref()
                .filter(|b| !b.is_empty())
                .or(ev.default_branch.as_deref());
            if want != Some(branch) {
                return Ok(None);
            }
            ("edge".to_string(), false)
        }
        TagKind::Ref => match rule.event {
            Some(RefEvent::Branch) => match ev.branch() {
                Some(b) => (b.to_string(), false),
                None => return Ok(None),
            },
            Some(RefEvent::Tag) => match ev.tag() {
                Some(t) => (t.to_string(), true),
                None => return Ok(None),
            },
            Some(RefEvent::Pr) => {
                if !ev.is_pull_request() && !ev.git_ref.starts_with("refs/pull/") {
                    return Ok(None);
                }
                match ev.pr() {
                    Some(n) => (n.to_string(), false),
                    None => return Ok(None),
                }
            }
            None => return Ok(None),
        },
        TagKind::Raw => {
            let v = rule.value.as_deref().unwrap_or("");
            (cx.render(v, rule.span_of("value"), &none)?, false)
        }
        TagKind::Sha => {
            if ev.sha.is_empty() {
                return Ok(None);
            }
            let v = match rule.format {
                ShaFormat::Short => ev.short_sha().to_string(),
                ShaFormat::Long => ev.sha.clone(),
            };
            (v, false)
        }
        TagKind::Describe => match ev
            .describe
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            Some(d) => (d.to_string(), false),
            None => return Ok(None),
        },
    };
    if value.is_empty() {
        return Ok(None);
    }
    let default_prefix = match (rule.kind, rule.event) {
        (TagKind::Sha, _) => Some("sha-"),
        (TagKind::Ref, Some(RefEvent::Pr)) => Some("pr-"),
        _ => None,
    };
    let prefix = match (&rule.prefix, default_prefix) {
        (Some(p), _) => cx.render(p, rule.span_of("prefix"), &none)?,
        (None, Some(d)) => d.to_string(),
        (None, None) => cx.render(&flavor.prefix, rule.span, &none)?,
    };
    let suffix = match &rule.suffix {
        Some(s) => cx.render(s, rule.span_of("suffix"), &none)?,
        None => cx.render(&flavor.suffix, rule.span, &none)?,
    };
    let tag = sanitize_tag(&format!("{prefix}{value}{suffix}"));
    if tag.is_empty() {
        return Ok(None);
    }
    Ok(Some((vec![tag], latest)))
}
