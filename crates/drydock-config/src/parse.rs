//! From the YAML tree to the typed [`Pipeline`], collecting every diagnostic.

use drydock_diagnostics::{Diagnostic, Span};
use drydock_expr::{Condition, ParseOptions, Template};
use drydock_tags::time::TimeZone;
use drydock_tags::{Flavor, TagsSpec};

use crate::cron::Cron;
use crate::glob::Glob;
use crate::keys::{self, Keys};
use crate::model::*;
use crate::suggest::did_you_mean;
use crate::yaml::{Node, Scalar, value_offset};

/// Contexts available in each place (as GitHub documents context availability).
pub(crate) const CTX_TOP: &[&str] = &["github"];
pub(crate) const CTX_IMAGE: &[&str] = &["github", "env"];
pub(crate) const CTX_JOB: &[&str] = &["github", "env", "needs", "images"];
pub(crate) const CTX_STEP: &[&str] = &[
    "github", "env", "needs", "images", "steps", "secrets", "job",
];

pub(crate) struct Cx<'s> {
    pub src: &'s str,
    pub diags: Vec<Diagnostic>,
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

fn is_env_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

impl<'s> Cx<'s> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn type_error(&mut self, node: &Node, what: &str, expected: &str) {
        self.err(
            Diagnostic::error(
                format!("{what}: expected {expected}, found {}", node.kind()),
                node.span(),
            )
            .with_code("wrong-type")
            .with_label(format!("expected {expected}")),
        );
    }

    /// A mapping with known keys; unknown keys are reported with a suggestion.
    fn map<'n>(&mut self, node: &'n Node, keys: Keys, what: &str) -> Vec<(&'n Scalar, &'n Node)> {
        let entries = self.map_any(node, what);
        let names = keys::names(keys);
        entries
            .into_iter()
            .filter(|(k, _)| {
                if names.contains(&k.value.as_str()) {
                    return true;
                }
                let mut d =
                    Diagnostic::error(format!("unknown key `{}` in {what}", k.value), k.span)
                        .with_code("unknown-key")
                        .with_label("not a known key");
                if let Some(s) = did_you_mean(&k.value, &names) {
                    d = d.with_hint(format!("did you mean `{s}`?"));
                }
                d = d.with_hint(format!("{what} takes: {}", names.join(", ")));
                self.err(d);
                false
            })
            .collect()
    }

    /// A mapping with any keys (null is an empty mapping).
    fn map_any<'n>(&mut self, node: &'n Node, what: &str) -> Vec<(&'n Scalar, &'n Node)> {
        match node {
            Node::Map(items, _) => items.iter().map(|(k, v)| (k, v)).collect(),
            n if n.is_null() => Vec::new(),
            n => {
                self.type_error(n, what, "a mapping");
                Vec::new()
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        match node {
            Node::Scalar(s) if !(s.plain && node.is_null()) => {
                Some(Spanned::new(s.value.clone(), s.span))
            }
            n => {
                self.type_error(n, what, "a string");
                None
            }
        }
    }

    /// A list of strings; a single string is a list of one.
    fn strings(&mut self, node: &Node, what: &str) -> Vec<Spanned<String>> {
        match node {
            Node::Seq(items, _) => items.iter().filter_map(|n| self.string(n, what)).collect(),
            n if n.is_null() => Vec::new(),
            Node::Scalar(_) => self.string(node, what).into_iter().collect(),
            n => {
                self.type_error(n, what, "a list of strings");
                Vec::new()
            }
        }
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node {
            Node::Scalar(s) if s.plain => match s.value.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => {
                    self.type_error(node, what, "true or false");
                    None
                }
            },
            n => {
                self.type_error(n, what, "true or false");
                None
            }
        }
    }

    fn number(&mut self, node: &Node, what: &str) -> Option<Spanned<f64>> {
        match node {
            Node::Scalar(s) if s.plain => match s.value.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Some(Spanned::new(v, s.span)),
                Ok(_) => {
                    self.err(
                        Diagnostic::error(format!("{what}: must be a positive number"), s.span)
                            .with_code("invalid-value"),
                    );
                    None
                }
                Err(_) => {
                    self.type_error(node, what, "a number");
                    None
                }
            },
            n => {
                self.type_error(n, what, "a number");
                None
            }
        }
    }

    fn offsets(&self, s: &Scalar) -> Vec<usize> {
        let text = &s.value;
        if self.src.get(s.span.range()) == Some(text.as_str()) {
            return (0..=text.len()).map(|i| s.span.start + i).collect();
        }
        (0..=text.len())
            .map(|i| value_offset(self.src, s, i))
            .collect()
    }

    fn scalar<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n Scalar> {
        match node {
            Node::Scalar(s) => Some(s),
            n => {
                self.type_error(n, what, "a string");
                None
            }
        }
    }

    /// A string that may contain `${{ }}`, parsed with the contexts allowed here.
    fn expression(&mut self, node: &Node, what: &str, contexts: &[&str]) -> Option<Expression> {
        let s = self.scalar(node, what)?;
        let offsets = self.offsets(s);
        let opts = ParseOptions::with_contexts(contexts);
        match Template::parse_with(&s.value, &opts) {
            Ok(template) => Some(Expression {
                text: s.value.clone(),
                template,
                span: s.span,
                offsets,
            }),
            Err(e) => {
                self.err(e.to_diagnostic(|sp| map_span(&offsets, s.span.start, sp)));
                None
            }
        }
    }

    fn condition(&mut self, node: &Node, contexts: &[&str]) -> Option<If> {
        let s = match node {
            Node::Scalar(s) => s,
            n => {
                self.type_error(n, "`if`", "an expression");
                return None;
            }
        };
        let offsets = self.offsets(s);
        let opts = ParseOptions::with_contexts(contexts);
        match Condition::parse_with(&s.value, &opts) {
            Ok(condition) => Some(If {
                text: s.value.clone(),
                condition,
                span: s.span,
                offsets,
            }),
            Err(e) => {
                self.err(e.to_diagnostic(|sp| map_span(&offsets, s.span.start, sp)));
                None
            }
        }
    }

    fn bool_or_expr(&mut self, node: &Node, what: &str, contexts: &[&str]) -> Option<BoolOrExpr> {
        if let Node::Scalar(s) = node {
            if s.plain
                && matches!(
                    s.value.as_str(),
                    "true" | "false" | "True" | "False" | "TRUE" | "FALSE"
                )
            {
                return self.bool(node, what).map(BoolOrExpr::Bool);
            }
            if s.value.contains("${{") {
                return self.expression(node, what, contexts).map(BoolOrExpr::Expr);
            }
        }
        self.type_error(node, what, "true, false or an expression `${{ }}`");
        None
    }

    fn patterns(&mut self, node: &Node, what: &str) -> Option<Patterns> {
        let mut globs = Vec::new();
        let items = self.strings(node, what);
        for p in items {
            match Glob::new(&p.value) {
                Ok(g) => globs.push(g),
                Err(e) => {
                    let (scalar_span, text) = (p.span, &p.value);
                    // quoted patterns: the value starts one byte in
                    let base = scalar_span.start
                        + usize::from(self.src.get(scalar_span.range()) != Some(text.as_str()));
                    let span = Span::new(
                        base + e.start,
                        (base + e.end)
                            .max(base + e.start + 1)
                            .min(scalar_span.end.max(base + 1)),
                    );
                    self.err(
                        Diagnostic::error(format!("invalid pattern `{}`: {}", p.value, e.message), span)
                            .with_code("bad-glob")
                            .with_hint("patterns use `*` (not /), `**`, `?`, `+`, `[a-z]`, `\\` to escape and a leading `!` to exclude"),
                    );
                }
            }
        }
        Some(Patterns {
            globs,
            span: node.span(),
        })
    }

    fn env(
        &mut self,
        node: &Node,
        what: &str,
        contexts: &[&str],
    ) -> Vec<(Spanned<String>, Expression)> {
        let mut out = Vec::new();
        for (k, v) in self.map_any(node, what) {
            if !is_env_name(&k.value) {
                self.err(
                    Diagnostic::error(
                        format!("`{}` is not a valid environment variable name", k.value),
                        k.span,
                    )
                    .with_code("invalid-name")
                    .with_hint("names are letters, digits and `_`, not starting with a digit"),
                );
            }
            if let Some(e) = self.expression(v, &format!("{what}.{}", k.value), contexts) {
                out.push((Spanned::new(k.value.clone(), k.span), e));
            }
        }
        out
    }
}

pub(crate) fn pipeline(cx: &mut Cx<'_>, root: &Node) -> Pipeline {
    let mut p = Pipeline {
        on: Triggers::default_triggers(),
        env: Vec::new(),
        images: Vec::new(),
        secrets: Vec::new(),
        jobs: Vec::new(),
    };
    let mut saw_jobs = false;
    for (k, v) in cx.map(root, keys::PIPELINE, "the pipeline") {
        match k.value.as_str() {
            "on" => p.on = triggers(cx, v, "`on`"),
            "env" => p.env = cx.env(v, "env", CTX_TOP),
            "images" => {
                for (name, spec) in cx.map_any(v, "images") {
                    check_name(cx, name, "image");
                    p.images.push(image(cx, name, spec));
                }
            }
            "secrets" => {
                for (name, spec) in cx.map_any(v, "secrets") {
                    check_name(cx, name, "secret group");
                    p.secrets.push(secret_group(cx, name, spec));
                }
            }
            "jobs" => {
                saw_jobs = true;
                for (name, spec) in cx.map_any(v, "jobs") {
                    check_name(cx, name, "job");
                    p.jobs.push(job(cx, name, spec));
                }
            }
            _ => {}
        }
    }
    if !saw_jobs || p.jobs.is_empty() {
        cx.err(
            Diagnostic::error("the pipeline has no jobs", root.span().cover(Span::point(root.span().start)))
                .with_code("no-jobs")
                .with_hint("add `jobs:` with at least one job, e.g. `jobs: { test: { steps: [ { run: make test } ] } }`"),
        );
    }
    p
}

/// `os/arch[/variant]` in lower case.
fn is_platform(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

fn check_name(cx: &mut Cx<'_>, name: &Scalar, what: &str) {
    if !is_ident(&name.value) {
        cx.err(
            Diagnostic::error(
                format!("`{}` is not a valid {what} name", name.value),
                name.span,
            )
            .with_code("invalid-name")
            .with_hint("names are letters, digits, `_` and `-`, starting with a letter or `_`"),
        );
    }
}

pub(crate) fn triggers(cx: &mut Cx<'_>, node: &Node, what: &str) -> Triggers {
    let mut t = Triggers::default();
    let events = keys::names(keys::ON);
    let event = |cx: &mut Cx<'_>, name: &Scalar, v: Option<&Node>, t: &mut Triggers| match name
        .value
        .as_str()
    {
        "push" => {
            let mut push = PushTrigger::default();
            if let Some(v) = v {
                for (k, val) in cx.map(v, keys::PUSH, "`push`") {
                    let pats = cx.patterns(val, &format!("push.{}", k.value));
                    match k.value.as_str() {
                        "branches" => push.branches = pats,
                        "branches-ignore" => push.branches_ignore = pats,
                        "tags" => push.tags = pats,
                        "tags-ignore" => push.tags_ignore = pats,
                        "paths" => push.paths = pats,
                        "paths-ignore" => push.paths_ignore = pats,
                        _ => {}
                    }
                }
            }
            t.push = Some(push);
        }
        "pull_request" => {
            let mut pr = PullRequestTrigger::default();
            if let Some(v) = v {
                for (k, val) in cx.map(v, keys::PULL_REQUEST, "`pull_request`") {
                    let pats = cx.patterns(val, &format!("pull_request.{}", k.value));
                    match k.value.as_str() {
                        "branches" => pr.branches = pats,
                        "branches-ignore" => pr.branches_ignore = pats,
                        "paths" => pr.paths = pats,
                        "paths-ignore" => pr.paths_ignore = pats,
                        _ => {}
                    }
                }
            }
            t.pull_request = Some(pr);
        }
        "schedule" => match v {
            Some(Node::Seq(items, _)) => {
                for item in items {
                    let mut cron = None;
                    let mut tz = TimeZone::UTC;
                    let mut cron_seen = false;
                    for (k, val) in cx.map(item, keys::SCHEDULE, "a schedule") {
                        match k.value.as_str() {
                            "cron" => {
                                cron_seen = true;
                                if let Some(s) = cx.scalar(val, "cron") {
                                    let base = s.span.start
                                        + usize::from(
                                            cx.src.get(s.span.range()) != Some(s.value.as_str()),
                                        );
                                    match Cron::parse(&s.value) {
                                        Ok(c) => cron = Some(c),
                                        Err(e) => cx.err(
                                            Diagnostic::error(format!("invalid cron expression: {}", e.message), Span::new(base + e.start, base + e.end))
                                                .with_code("bad-cron")
                                                .with_hint("minute hour day-of-month month day-of-week, e.g. \"0 3 * * MON-FRI\", or @daily"),
                                        ),
                                    }
                                }
                            }
                            "timezone" => {
                                if let Some(s) = cx.string(val, "timezone") {
                                    match TimeZone::parse(&s.value) {
                                        Ok(z) => tz = z,
                                        Err(m) => cx.err(
                                            Diagnostic::error(m, s.span).with_code("bad-timezone"),
                                        ),
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    if !cron_seen && matches!(item, Node::Map(..)) {
                        cx.err(
                            Diagnostic::error("a schedule needs `cron`", item.span())
                                .with_code("missing-key")
                                .with_hint("- cron: \"0 0 * * *\""),
                        );
                    }
                    if let Some(cron) = cron {
                        t.schedule.push(Schedule {
                            cron,
                            timezone: tz,
                            span: item.span(),
                        });
                    }
                }
            }
            Some(n) => cx.type_error(n, "`schedule`", "a list of { cron: ... }"),
            None => cx.err(
                Diagnostic::error("`schedule` needs a list of { cron: ... }", name.span)
                    .with_code("missing-key"),
            ),
        },
        "image" => {
            t.image = v.map(|v| cx.strings(v, "`image`")).unwrap_or_default();
            if t.image.is_empty() {
                cx.err(
                    Diagnostic::error(
                        "`image` needs the upstream image references to watch",
                        name.span,
                    )
                    .with_code("missing-key"),
                );
            }
        }
        "manual" | "workflow_dispatch" => {
            if let Some(v) = v
                && !v.is_null()
                && !matches!(v, Node::Map(m, _) if m.is_empty())
                && cx.bool(v, "manual") == Some(false)
            {
                return;
            }
            t.manual = true;
        }
        _ => {
            let mut d = Diagnostic::error(
                format!("unknown event `{}` in {what}", name.value),
                name.span,
            )
            .with_code("unknown-event");
            if let Some(s) = did_you_mean(&name.value, &events) {
                d = d.with_hint(format!("did you mean `{s}`?"));
            }
            cx.err(d.with_hint(format!("events: {}", events.join(", "))));
        }
    };
    match node {
        Node::Scalar(s) if !node.is_null() => event(cx, s, None, &mut t),
        Node::Seq(items, _) => {
            for i in items {
                match i {
                    Node::Scalar(s) => event(cx, s, None, &mut t),
                    n => cx.type_error(n, what, "event names"),
                }
            }
        }
        Node::Map(items, _) => {
            for (k, v) in items {
                let v = if v.is_null() { None } else { Some(v) };
                event(cx, k, v, &mut t);
            }
        }
        n if n.is_null() => return Triggers::default_triggers(),
        n => cx.type_error(n, what, "events"),
    }
    t
}

/// Replaces each `${{ }}` of a tags/flavor input by `true`, keeping a map back to the original
/// offsets, so the input can be checked before any event is known.
fn placeholder_text(e: &Expression) -> (String, Vec<usize>) {
    let mut out = String::new();
    let mut map = Vec::new();
    for seg in &e.template.segments {
        match seg {
            drydock_expr::Segment::Text(t, sp) => {
                for i in 0..t.len() {
                    map.push(sp.start + i);
                }
                out.push_str(t);
            }
            drydock_expr::Segment::Expr(_, sp) => {
                for _ in 0..4 {
                    map.push(sp.start);
                }
                out.push_str("true");
            }
        }
    }
    map.push(e.text.len());
    (out, map)
}

fn image(cx: &mut Cx<'_>, name: &Scalar, node: &Node) -> ImageSpec {
    let mut img = ImageSpec {
        name: Spanned::new(name.value.clone(), name.span),
        context: Spanned::new(".".into(), name.span),
        git: None,
        dockerfile: Spanned::new("Dockerfile".into(), name.span),
        target: None,
        args: Vec::new(),
        platforms: Vec::new(),
        repositories: Vec::new(),
        tags: None,
        tags_spec: TagsSpec::default_rules(),
        flavor: None,
        flavor_spec: Flavor::default(),
        labels: Vec::new(),
        push: None,
    };
    let mut dockerfile = None;
    let what = format!("images.{}", name.value);
    for (k, v) in cx.map(node, keys::IMAGE, &format!("`{what}`")) {
        match k.value.as_str() {
            "context" => {
                if let Some(s) = cx.string(v, "context") {
                    img.git = git_context(cx, &s);
                    img.context = s;
                }
            }
            "dockerfile" => dockerfile = cx.string(v, "dockerfile"),
            "target" => img.target = cx.string(v, "target"),
            "args" => {
                for (ak, av) in cx.map_any(v, &format!("{what}.args")) {
                    let mut contexts = CTX_IMAGE.to_vec();
                    contexts.push("secrets");
                    if let Some(e) =
                        cx.expression(av, &format!("{what}.args.{}", ak.value), &contexts)
                    {
                        let secret = e
                            .template
                            .exprs()
                            .flat_map(|x| x.contexts())
                            .find(|(c, _)| c.eq_ignore_ascii_case("secrets"));
                        if let Some((_, sp)) = secret {
                            cx.err(
                                Diagnostic::error(format!("build arg `{}` reads a secret", ak.value), e.file_span(sp))
                                    .with_code("secret-build-arg")
                                    .with_label("secrets must not be build args: they end up in the image history and the cache key")
                                    .with_hint("declare the secret in a `secrets:` group and mount it with `RUN --mount=type=secret,id=NAME` (`--secret id=NAME` on the command line)"),
                            );
                        } else {
                            img.args.push((Spanned::new(ak.value.clone(), ak.span), e));
                        }
                    }
                }
            }
            "platforms" => {
                img.platforms = cx.strings(v, "platforms");
                for p in &img.platforms {
                    let ok = is_platform(&p.value);
                    if !ok {
                        cx.err(
                            Diagnostic::error(format!("`{}` is not a platform", p.value), p.span)
                                .with_code("invalid-value")
                                .with_hint("platforms are os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"),
                        );
                    }
                }
            }
            "repositories" => {
                img.repositories = cx.strings(v, "repositories");
                for r in &img.repositories {
                    if r.value.trim().is_empty()
                        || r.value.contains(char::is_whitespace)
                        || r.value
                            .rsplit('/')
                            .next()
                            .is_some_and(|l| l.contains(':') || l.contains('@'))
                    {
                        cx.err(
                            Diagnostic::error(format!("`{}` is not a repository name", r.value), r.span)
                                .with_code("invalid-value")
                                .with_hint("a repository has no tag or digest: registry.example.com/acme/app (tags come from `tags`)"),
                        );
                    }
                }
            }
            "tags" | "flavor" => {
                let key = k.value.clone();
                let Some(e) = cx.expression(v, &format!("{what}.{key}"), CTX_IMAGE) else {
                    continue;
                };
                let (text, map) = placeholder_text(&e);
                let to_file = |s: Span| {
                    let at = |i: usize| {
                        e.file_span(Span::point(map.get(i).or(map.last()).copied().unwrap_or(0)))
                            .start
                    };
                    Span::new(at(s.start), at(s.end).max(at(s.start)))
                };
                if key == "tags" {
                    match TagsSpec::parse(&text) {
                        Ok(spec) => img.tags_spec = spec,
                        Err(errs) => errs.iter().for_each(|er| cx.err(er.to_diagnostic(to_file))),
                    }
                    img.tags = Some(e);
                } else {
                    match Flavor::parse(&text) {
                        Ok(f) => img.flavor_spec = f,
                        Err(errs) => errs.iter().for_each(|er| cx.err(er.to_diagnostic(to_file))),
                    }
                    img.flavor = Some(e);
                }
            }
            "labels" => {
                for (lk, lv) in cx.map_any(v, &format!("{what}.labels")) {
                    if let Some(e) =
                        cx.expression(lv, &format!("{what}.labels.{}", lk.value), CTX_IMAGE)
                    {
                        img.labels
                            .push((Spanned::new(lk.value.clone(), lk.span), e));
                    }
                }
            }
            "push" => img.push = cx.expression(v, &format!("{what}.push"), CTX_IMAGE),
            _ => {}
        }
    }
    img.dockerfile = match dockerfile {
        Some(d) => d,
        None if img.git.is_some() || img.context.value == "." => {
            Spanned::new("Dockerfile".into(), img.context.span)
        }
        None => Spanned::new(
            format!("{}/Dockerfile", img.context.value.trim_end_matches('/')),
            img.context.span,
        ),
    };
    img
}

/// `https://host/repo.git#ref:subdir`, `git@host:repo.git#ref`, `ssh://…`, `git://…`.
fn git_context(cx: &mut Cx<'_>, s: &Spanned<String>) -> Option<GitContext> {
    let v = s.value.trim();
    let is_git = ["https://", "http://", "ssh://", "git://", "git@"]
        .iter()
        .any(|p| v.starts_with(p))
        || v.contains("://");
    if !is_git {
        return None;
    }
    if !["https://", "http://", "ssh://", "git://", "git@"]
        .iter()
        .any(|p| v.starts_with(p))
    {
        cx.err(
            Diagnostic::error(format!("unsupported URL scheme in context `{v}`"), s.span)
                .with_code("invalid-value")
                .with_hint(
                    "git contexts are https://, http://, ssh://, git:// or git@host:path URLs",
                ),
        );
        return None;
    }
    let (url, frag) = match v.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (v, None),
    };
    let (git_ref, subdir) = match frag {
        Some(f) => match f.split_once(':') {
            Some((r, d)) => (Some(r), Some(d)),
            None => (Some(f), None),
        },
        None => (None, None),
    };
    let nonempty = |x: Option<&str>| x.filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(d) = subdir
        && (d.starts_with('/') || d.split('/').any(|c| c == ".."))
    {
        cx.err(
            Diagnostic::error(
                format!("subdirectory `{d}` must be relative and stay inside the repository"),
                s.span,
            )
            .with_code("invalid-value"),
        );
    }
    Some(GitContext {
        url: url.to_string(),
        git_ref: nonempty(git_ref),
        subdir: nonempty(subdir),
    })
}

fn secret_group(cx: &mut Cx<'_>, name: &Scalar, node: &Node) -> SecretGroup {
    let mut g = SecretGroup {
        name: Spanned::new(name.value.clone(), name.span),
        keys: Vec::new(),
        allow: SecretAllow::default(),
    };
    let what = format!("`secrets.{}`", name.value);
    for (k, v) in cx.map(node, keys::SECRET_GROUP, &what) {
        match k.value.as_str() {
            "keys" => {
                g.keys = cx.strings(v, "keys");
                for key in &g.keys {
                    if !is_env_name(&key.value) {
                        cx.err(
                            Diagnostic::error(
                                format!("`{}` is not a valid secret name", key.value),
                                key.span,
                            )
                            .with_code("invalid-name")
                            .with_hint(
                                "secrets become environment variables: letters, digits and `_`",
                            ),
                        );
                    }
                }
            }
            "allow" => {
                for (ak, av) in cx.map(v, keys::ALLOW, "`allow`") {
                    match ak.value.as_str() {
                        "branches" => g.allow.branches = cx.patterns(av, "allow.branches"),
                        "events" => {
                            let evs = cx.strings(av, "allow.events");
                            let known = [
                                "push",
                                "pull_request",
                                "schedule",
                                "image",
                                "manual",
                                "workflow_dispatch",
                            ];
                            for e in &evs {
                                if !known.contains(&e.value.as_str()) {
                                    let mut d = Diagnostic::error(
                                        format!("unknown event `{}`", e.value),
                                        e.span,
                                    )
                                    .with_code("unknown-event");
                                    if let Some(s) = did_you_mean(&e.value, &known) {
                                        d = d.with_hint(format!("did you mean `{s}`?"));
                                    }
                                    cx.err(d);
                                }
                            }
                            g.allow.events = Some(evs);
                        }
                        "projects" => g.allow.projects = Some(cx.strings(av, "allow.projects")),
                        "jobs" => g.allow.jobs = Some(cx.strings(av, "allow.jobs")),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if g.keys.is_empty() {
        cx.err(
            Diagnostic::error(
                format!("secret group `{}` has no keys", name.value),
                name.span,
            )
            .with_code("missing-key")
            .with_hint("keys: [NAME, ...]"),
        );
    }
    g
}

fn duration_seconds(cx: &mut Cx<'_>, node: &Node) -> Option<u64> {
    let s = cx.scalar(node, "timeout")?;
    let v = s.value.trim();
    let (num, mul) = match v.char_indices().last() {
        Some((i, 's')) => (&v[..i], 1),
        Some((i, 'm')) => (&v[..i], 60),
        Some((i, 'h')) => (&v[..i], 3600),
        _ => (v, 1),
    };
    match num.trim().parse::<u64>() {
        Ok(n) if n > 0 => Some(n * mul),
        _ => {
            cx.err(
                Diagnostic::error(format!("`{v}` is not a duration"), s.span)
                    .with_code("invalid-value")
                    .with_hint("for example 30s, 2m or 1h"),
            );
            None
        }
    }
}

fn job(cx: &mut Cx<'_>, name: &Scalar, node: &Node) -> Job {
    let mut j = Job {
        name: Spanned::new(name.value.clone(), name.span),
        image: None,
        services: Vec::new(),
        steps: Vec::new(),
        needs: Vec::new(),
        if_: None,
        on: None,
        env: Vec::new(),
        persist: Vec::new(),
        timeout_minutes: None,
        continue_on_error: None,
        working_directory: None,
        shell: None,
        secrets: Vec::new(),
        outputs: Vec::new(),
    };
    let what = format!("jobs.{}", name.value);
    let mut saw_steps = false;
    // Steps written (a step with an error is still written: no "no steps" on top of it).
    let mut steps_written = 0;
    for (k, v) in cx.map(node, keys::JOB, &format!("job `{}`", name.value)) {
        match k.value.as_str() {
            "image" => j.image = cx.expression(v, "image", CTX_JOB),
            "services" => {
                for (sn, sv) in cx.map_any(v, &format!("{what}.services")) {
                    check_name(cx, sn, "service");
                    if let Some(s) = service(cx, sn, sv) {
                        j.services.push(s);
                    }
                }
            }
            "steps" => {
                saw_steps = true;
                match v {
                    Node::Seq(items, _) => {
                        steps_written += items.len();
                        for item in items {
                            if let Some(s) = step(cx, item) {
                                j.steps.push(s);
                            }
                        }
                    }
                    n => cx.type_error(n, "steps", "a list of steps"),
                }
            }
            "needs" => j.needs = cx.strings(v, "needs"),
            "if" => j.if_ = cx.condition(v, CTX_JOB),
            "on" => j.on = Some(triggers(cx, v, &format!("`{what}.on`"))),
            "env" => j.env = cx.env(v, "env", CTX_JOB),
            "persist" => {
                j.persist = cx.strings(v, "persist");
                for p in &j.persist {
                    if p.value.trim().is_empty()
                        || p.value.starts_with('/')
                        || p.value.split('/').any(|c| c == "..")
                    {
                        cx.err(
                            Diagnostic::error(
                                format!(
                                    "persist path `{}` must be relative to the workspace",
                                    p.value
                                ),
                                p.span,
                            )
                            .with_code("invalid-value")
                            .with_hint("for example dist/ or build/app.tar"),
                        );
                    }
                }
            }
            "timeout-minutes" => j.timeout_minutes = cx.number(v, "timeout-minutes"),
            "continue-on-error" => {
                j.continue_on_error = cx.bool_or_expr(v, "continue-on-error", CTX_JOB)
            }
            "working-directory" => j.working_directory = cx.string(v, "working-directory"),
            "shell" => j.shell = cx.string(v, "shell"),
            "secrets" => j.secrets = cx.strings(v, "secrets"),
            "outputs" => j.outputs = outputs(cx, v, &what),
            _ => {}
        }
    }
    if !saw_steps || steps_written == 0 {
        cx.err(
            Diagnostic::error(format!("job `{}` has no steps", name.value), name.span)
                .with_code("no-steps")
                .with_hint("steps: [ { run: make test } ]"),
        );
    }
    j
}

/// A job's `outputs:`: output names (identifiers, as step ids) to expressions, which see what
/// a step sees (GitHub: `steps`, `needs`, `env`, `secrets`, `job`, ...).
fn outputs(cx: &mut Cx<'_>, node: &Node, what: &str) -> Vec<(Spanned<String>, Expression)> {
    let mut out = Vec::new();
    for (k, v) in cx.map_any(node, &format!("{what}.outputs")) {
        if !is_ident(&k.value) {
            cx.err(
                Diagnostic::error(format!("`{}` is not a valid output name", k.value), k.span)
                    .with_code("invalid-name")
                    .with_hint(
                        "names are letters, digits, `_` and `-`, starting with a letter or `_`",
                    ),
            );
        }
        if let Some(e) = cx.expression(v, &format!("{what}.outputs.{}", k.value), CTX_STEP) {
            out.push((Spanned::new(k.value.clone(), k.span), e));
        }
    }
    out
}

fn service(cx: &mut Cx<'_>, name: &Scalar, node: &Node) -> Option<Service> {
    let mut image = None;
    let mut s = Service {
        name: Spanned::new(name.value.clone(), name.span),
        image: placeholder(name),
        env: Vec::new(),
        ready: None,
        timeout_seconds: 60,
        ports: Vec::new(),
        command: None,
    };
    for (k, v) in cx.map(node, keys::SERVICE, &format!("service `{}`", name.value)) {
        match k.value.as_str() {
            "image" => image = cx.expression(v, "image", CTX_JOB),
            "env" => s.env = cx.env(v, "env", CTX_JOB),
            "ready" => s.ready = cx.expression(v, "ready", CTX_JOB),
            "timeout" => {
                if let Some(t) = duration_seconds(cx, v) {
                    s.timeout_seconds = t;
                }
            }
            "ports" => match v {
                Node::Seq(items, _) => {
                    for p in items {
                        match p {
                            Node::Scalar(sc) => match sc.value.parse::<u16>() {
                                Ok(n) if n > 0 => s.ports.push(Spanned::new(n, sc.span)),
                                _ => cx.err(
                                    Diagnostic::error(
                                        format!("`{}` is not a port number", sc.value),
                                        sc.span,
                                    )
                                    .with_code("invalid-value"),
                                ),
                            },
                            n => cx.type_error(n, "ports", "a port number"),
                        }
                    }
                }
                n => cx.type_error(n, "ports", "a list of port numbers"),
            },
            "command" => s.command = cx.expression(v, "command", CTX_JOB),
            _ => {}
        }
    }
    match image {
        Some(i) => {
            s.image = i;
            Some(s)
        }
        None => {
            cx.err(
                Diagnostic::error(
                    format!("service `{}` needs an `image`", name.value),
                    name.span,
                )
                .with_code("missing-key"),
            );
            None
        }
    }
}

fn placeholder(name: &Scalar) -> Expression {
    Expression {
        text: String::new(),
        template: Template {
            segments: Vec::new(),
        },
        span: name.span,
        offsets: vec![name.span.start],
    }
}

fn step(cx: &mut Cx<'_>, node: &Node) -> Option<Step> {
    let span = node.span();
    let entries = cx.map(node, keys::STEP, "a step");
    if !matches!(node, Node::Map(..)) {
        return None;
    }
    let mut kind: Option<StepKind> = None;
    let mut kinds_seen: Vec<&Scalar> = Vec::new();
    let mut st = Step {
        kind: StepKind::Attach(Attach::All),
        name: None,
        id: None,
        if_: None,
        env: Vec::new(),
        working_directory: None,
        shell: None,
        continue_on_error: None,
        timeout_minutes: None,
        span,
    };
    for (k, v) in entries {
        match k.value.as_str() {
            "run" => {
                kinds_seen.push(k);
                kind = cx.expression(v, "run", CTX_STEP).map(StepKind::Run);
            }
            "build" | "push" => {
                kinds_seen.push(k);
                if let Some(s) = cx.string(v, &k.value) {
                    kind = Some(if k.value == "build" {
                        StepKind::Build(s)
                    } else {
                        StepKind::Push(s)
                    });
                }
            }
            "attach" => {
                kinds_seen.push(k);
                kind = match v {
                    Node::Scalar(s) if s.plain && s.value == "true" => {
                        Some(StepKind::Attach(Attach::All))
                    }
                    Node::Seq(..) => Some(StepKind::Attach(Attach::Jobs(cx.strings(v, "attach")))),
                    n => {
                        cx.type_error(n, "attach", "true or a list of job names");
                        None
                    }
                };
            }
            "name" => st.name = cx.string(v, "name"),
            "id" => {
                st.id = cx.string(v, "id");
                if let Some(id) = &st.id
                    && !is_ident(&id.value)
                {
                    cx.err(
                        Diagnostic::error(
                            format!("`{}` is not a valid step id", id.value),
                            id.span,
                        )
                        .with_code("invalid-name"),
                    );
                }
            }
            "if" => st.if_ = cx.condition(v, CTX_STEP),
            "env" => st.env = cx.env(v, "env", CTX_STEP),
            "working-directory" => st.working_directory = cx.string(v, "working-directory"),
            "shell" => st.shell = cx.string(v, "shell"),
            "continue-on-error" => {
                st.continue_on_error = cx.bool_or_expr(v, "continue-on-error", CTX_STEP)
            }
            "timeout-minutes" => st.timeout_minutes = cx.number(v, "timeout-minutes"),
            _ => {}
        }
    }
    match kinds_seen.len() {
        0 => {
            cx.err(
                Diagnostic::error(
                    "a step needs one of `run`, `build`, `push` or `attach`",
                    span,
                )
                .with_code("step-kind")
                .with_hint("- run: make test"),
            );
            None
        }
        1 => {
            let k = kind?;
            if !matches!(k, StepKind::Run(_))
                && let Some(sh) = &st.shell
            {
                cx.err(
                    Diagnostic::error("`shell` applies to `run` steps only", sh.span)
                        .with_code("invalid-key"),
                );
            }
            st.kind = k;
            Some(st)
        }
        _ => {
            let mut d = Diagnostic::error(
                format!(
                    "a step does one thing, this one has {}",
                    kinds_seen
                        .iter()
                        .map(|k| format!("`{}`", k.value))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                kinds_seen[1].span,
            )
            .with_code("step-kind");
            d = d.with_secondary(kinds_seen[0].span, "first here");
            cx.err(d.with_hint("split it into two steps"));
            None
        }
    }
}
