//! Phase one: stages, global ARGs, base names, the target and which stages it needs.

use std::collections::{BTreeMap, BTreeSet};

use drydock_diagnostics::{Diagnostic, Span};
use drydock_dockerfile::expand::{Lexer, NoEnv};
use drydock_dockerfile::lint::{INVALID_DEFAULT_ARG_IN_FROM, UNDEFINED_ARG_IN_FROM};
use drydock_dockerfile::{Command, Dockerfile, Instruction, Keyword, suggest};
use drydock_oci::{Platform, Reference};

use crate::options::{BuildOptions, ImageRequest};

/// The predefined proxy build args: usable without an ARG, passed to RUN, kept out of history
/// and cache keys.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    Stage(usize),
    Image(Reference),
}

/// Where a `COPY --from` / `--mount from=` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stage(usize),
    Image(Reference),
    Scratch,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    /// Lower-cased name.
    pub name: Option<String>,
    pub from: usize,
    /// Instruction indices of the stage body (after FROM).
    pub body: std::ops::Range<usize>,
    pub base: Base,
    pub platform: Platform,
    /// `FROM --platform` was given.
    pub platform_set: bool,
    pub deps: Vec<(Source, Span, usize)>,
}

impl Stage {
    /// `name` or the index, for messages and the source map.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.index.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct Analysis {
    /// Global ARGs with values (plus the automatic platform args), in declaration order.
    pub meta: Vec<(String, String)>,
    /// Global ARG names declared, with or without value.
    pub meta_declared: BTreeSet<String>,
    pub stages: Vec<Stage>,
    pub target: usize,
    /// Stages the target needs, in an order where dependencies come first.
    pub order: Vec<usize>,
    pub diagnostics: Vec<Diagnostic>,
    /// Build args a global or stage ARG declared (for the unused-build-arg warning).
    pub used_args: BTreeSet<String>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The images the needed stages read, deduplicated.
    pub fn image_requests(&self, df: &Dockerfile) -> Vec<ImageRequest> {
        let mut out: Vec<ImageRequest> = Vec::new();
        let mut push = |r: &Reference, p: &Platform, span: Span, line: usize| {
            if !out.iter().any(|x| &x.reference == r && &x.platform == p) {
                out.push(ImageRequest {
                    reference: r.clone(),
                    platform: p.clone(),
                    span,
                    line,
                });
            }
        };
        for &i in &self.order {
            let s = &self.stages[i];
            if let Base::Image(r) = &s.base {
                let ins = &df.instructions[s.from];
                let span = match &ins.command {
                    Command::From(f) => f.image.span,
                    _ => ins.span,
                };
                push(r, &s.platform, span, ins.start_line);
            }
            for (src, span, line) in &s.deps {
                if let Source::Image(r) = src {
                    push(r, &s.platform, *span, *line);
                }
            }
        }
        out
    }
}

/// BuildKit's platform formatting for the automatic args (`arm64` has no `v8` variant).
pub fn platform_string(p: &Platform) -> String {
    match (&*p.architecture, p.variant.as_deref()) {
        ("arm64", Some("v8")) | (_, None) => format!("{}/{}", p.os, p.architecture),
        (_, Some(v)) => format!("{}/{}/{v}", p.os, p.architecture),
    }
}

fn variant(p: &Platform) -> String {
    match (&*p.architecture, p.variant.as_deref()) {
        ("arm64", Some("v8")) => String::new(),
        (_, v) => v.unwrap_or("").to_string(),
    }
}

/// The automatic platform args.
pub fn platform_args(opts: &BuildOptions) -> Vec<(String, String)> {
    let (b, t) = (&opts.build_platform, &opts.platform);
    vec![
        ("BUILDPLATFORM".into(), platform_string(b)),
        ("BUILDOS".into(), b.os.clone()),
        ("BUILDARCH".into(), b.architecture.clone()),
        ("BUILDVARIANT".into(), variant(b)),
        ("TARGETPLATFORM".into(), platform_string(t)),
        ("TARGETOS".into(), t.os.clone()),
        ("TARGETARCH".into(), t.architecture.clone()),
        ("TARGETVARIANT".into(), variant(t)),
    ]
}

pub(crate) fn word_error_span(span: Span, word_len: usize, offset: usize) -> Span {
    if span.len() == word_len && offset < word_len {
        Span::new(span.start + offset, span.end)
    } else {
        span
    }
}

pub(crate) fn reference_hint(s: &str) -> String {
    if s.is_empty() {
        "the image name is empty: check the variables it is built from".into()
    } else if s.chars().any(|c| c.is_ascii_uppercase()) {
        "repository names must be lowercase".into()
    } else {
        "expected an image reference such as alpine:3.19, registry.example.com/team/app:1.0 or a stage name".into()
    }
}

/// Runs phase one.
pub fn analyze(df: &Dockerfile, opts: &BuildOptions) -> Analysis {
    let mut diags = Vec::new();
    let escape = df.escape();
    let lexer = Lexer::new(escape);
    let mut meta: Vec<(String, String)> = platform_args(opts);
    let mut meta_defaults: Vec<(String, String)> = platform_args(opts);
    let mut meta_declared = BTreeSet::new();
    let mut used_args = BTreeSet::new();
    let mut stages: Vec<Stage> = Vec::new();

    let from_indices: Vec<usize> = df
        .instructions
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == Keyword::From)
        .map(|(n, _)| n)
        .collect();
    let first_from = from_indices
        .first()
        .copied()
        .unwrap_or(df.instructions.len());

    // Global scope: only ARG may come before the first FROM.
    for ins in &df.instructions[..first_from] {
        match &ins.command {
            Command::Arg(args) => {
                for a in args {
                    let key = a.name.text.clone();
                    meta_declared.insert(key.clone());
                    let default = match &a.default {
                        Some(d) => match lexer.expand(&d.text, &meta_defaults) {
                            Ok(e) => Some(e.text),
                            Err(e) => {
                                diags.push(
                                    Diagnostic::error(
                                        e.message.clone(),
                                        word_error_span(d.span, d.text.len(), e.offset),
                                    )
                                    .with_code("expansion-error"),
                                );
                                None
                            }
                        },
                        None => None,
                    };
                    if let Some(d) = &default {
                        meta_defaults.push((key.clone(), d.clone()));
                    }
                    let value = match opts.build_args.get(&key) {
                        Some(v) => {
                            used_args.insert(key.clone());
                            Some(v.clone())
                        }
                        None => match &a.default {
                            Some(d) => lexer.expand(&d.text, &meta).ok().map(|e| e.text),
                            None => None,
                        },
                    };
                    if let Some(v) = value {
                        meta.push((key, v));
                    }
                }
            }
            Command::Invalid => {}
            _ => diags.push(
                Diagnostic::error(
                    format!("{} cannot come before the first FROM", ins.keyword),
                    ins.keyword_word.span,
                )
                .with_code("no-build-stage")
                .with_label("no build stage in current context")
                .with_hint(
                    "only ARG may appear before the first FROM; start a stage with FROM <image>",
                ),
            ),
        }
    }
    if from_indices.is_empty() {
        let span = df
            .instructions
            .first()
            .map_or(Span::point(0), |i| i.keyword_word.span);
        diags.push(
            Diagnostic::error("the Dockerfile has no FROM instruction", span)
                .with_code("no-stages")
                .with_hint("every build starts with FROM <image> (or FROM scratch)"),
        );
        return Analysis {
            meta,
            meta_declared,
            stages,
            target: 0,
            order: Vec::new(),
            diagnostics: diags,
            used_args,
        };
    }

    for (si, &fi) in from_indices.iter().enumerate() {
        let end = from_indices
            .get(si + 1)
            .copied()
            .unwrap_or(df.instructions.len());
        let ins = &df.instructions[fi];
        let mut stage = Stage {
            index: si,
            name: None,
            from: fi,
            body: fi + 1..end,
            base: Base::Scratch,
            platform: opts.platform.clone(),
            platform_set: false,
            deps: Vec::new(),
        };
        let Command::From(f) = &ins.command else {
            stages.push(stage);
            continue;
        };
        stage.name = f.name.as_ref().map(|n| n.text.to_ascii_lowercase());
        // Base name: expanded with the global ARGs only.
        let image = match lexer.expand(&f.image.text, &meta) {
            Ok(e) => {
                for name in &e.unmatched {
                    if !meta_declared.contains(name) {
                        let mut msg = format!("FROM argument '{name}' is not declared");
                        let candidates: Vec<&str> =
                            meta_declared.iter().map(String::as_str).collect();
                        if let Some(s) = suggest::closest(name, candidates) {
                            msg.push_str(&format!(" (did you mean {s}?)"));
                        }
                        diags.push(
                            UNDEFINED_ARG_IN_FROM
                                .diagnostic(msg, f.image.span)
                                .with_hint(format!("declare it before the first FROM: ARG {name}")),
                        );
                    }
                }
                // With defaults only (no --build-arg), is the name still valid?
                if f.image.text.contains('$')
                    && let Ok(d) = lexer.expand(&f.image.text, &meta_defaults)
                {
                    let bad = d.text.is_empty()
                        || (!d.text.eq_ignore_ascii_case("scratch")
                            && !stages
                                .iter()
                                .any(|s| s.name.as_deref() == Some(&d.text.to_ascii_lowercase()))
                            && Reference::parse(&d.text).is_err());
                    if bad {
                        let names: Vec<String> = d
                            .unmatched
                            .iter()
                            .cloned()
                            .chain(d.matched.iter().cloned())
                            .collect();
                        diags.push(INVALID_DEFAULT_ARG_IN_FROM.diagnostic(
                            format!("Default value for ARG {} results in empty or invalid base image name", f.image.text),
                            f.image.span,
                        )
                        .with_hint(format!("give {} a default value", if names.is_empty() { "the ARG".to_string() } else { names.join(", ") })));
                    }
                }
                e.text
            }
            Err(e) => {
                diags.push(
                    Diagnostic::error(
                        e.message.clone(),
                        word_error_span(f.image.span, f.image.text.len(), e.offset),
                    )
                    .with_code("expansion-error"),
                );
                stages.push(stage);
                continue;
            }
        };
        if let Some(p) = &f.platform {
            stage.platform_set = true;
            match lexer.expand(&p.text, &meta) {
                Ok(e) if e.unmatched.iter().any(|n| !meta_declared.contains(n)) => {
                    for name in e.unmatched.iter().filter(|n| !meta_declared.contains(*n)) {
                        let mut msg = format!("FROM argument '{name}' is not declared");
                        let known: Vec<String> = meta
                            .iter()
                            .map(|(k, _)| k.clone())
                            .chain(meta_declared.iter().cloned())
                            .collect();
                        if let Some(s) = suggest::closest(name, known.iter().map(String::as_str)) {
                            msg.push_str(&format!(" (did you mean {s}?)"));
                        }
                        diags.push(UNDEFINED_ARG_IN_FROM.diagnostic(msg, p.span));
                    }
                    diags.push(
                        Diagnostic::error(
                            format!("invalid platform {:?}: it expands to {:?}", p.text, e.text),
                            p.span,
                        )
                        .with_code("invalid-platform")
                        .with_hint("use $BUILDPLATFORM, $TARGETPLATFORM or a declared global ARG"),
                    );
                }
                Ok(e) => match Platform::parse(&e.text) {
                    Ok(pl) => stage.platform = pl,
                    Err(err) => diags.push(
                        Diagnostic::error(err.to_string(), p.span)
                            .with_code("invalid-platform")
                            .with_hint("e.g. --platform=linux/amd64 or --platform=$BUILDPLATFORM"),
                    ),
                },
                Err(e) => diags.push(
                    Diagnostic::error(
                        e.message.clone(),
                        word_error_span(p.span, p.text.len(), e.offset),
                    )
                    .with_code("expansion-error"),
                ),
            }
        }
        let lower = image.to_ascii_lowercase();
        stage.base = if lower == "scratch" {
            Base::Scratch
        } else if let Some(prev) = stages
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            Base::Stage(prev.index)
        } else {
            match Reference::parse(&image) {
                Ok(r) => Base::Image(r),
                Err(e) => {
                    let mut d = Diagnostic::error(
                        format!("invalid base image name {image:?}: {e}"),
                        f.image.span,
                    )
                    .with_code("invalid-reference")
                    .with_hint(reference_hint(&image));
                    if let Some(s) =
                        suggest::closest(&lower, stages.iter().filter_map(|s| s.name.as_deref()))
                    {
                        d = d.with_hint(format!("did you mean the stage {s:?}?"));
                    }
                    diags.push(d);
                    Base::Scratch
                }
            }
        };
        stages.push(stage);
    }

    // Dependencies of each stage on other stages and images.
    let names: Vec<Option<String>> = stages.iter().map(|s| s.name.clone()).collect();
    for (si, stage) in stages.iter_mut().enumerate() {
        let mut deps = Vec::new();
        for ins in &df.instructions[stage.body.clone()] {
            collect_deps(ins, si, &names, &meta, escape, opts, &mut deps, &mut diags);
        }
        stage.deps = deps;
    }

    // The target and what it needs.
    let target = match &opts.target {
        None => stages.len() - 1,
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            match stages
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
            {
                Some(i) => i,
                None => {
                    let mut d = Diagnostic::error(
                        format!("target stage {t:?} could not be found"),
                        Span::point(0),
                    )
                    .with_code("unknown-target");
                    let all: Vec<&str> = stages.iter().filter_map(|s| s.name.as_deref()).collect();
                    if let Some(s) = suggest::closest(&lower, all.iter().copied()) {
                        d = d.with_hint(format!("did you mean {s:?}?"));
                    }
                    if all.is_empty() {
                        d = d.with_hint("no stage has a name: write FROM <image> AS <name>");
                    } else {
                        d = d.with_hint(format!("stages: {}", all.join(", ")));
                    }
                    diags.push(d);
                    stages.len() - 1
                }
            }
        }
    };
    let mut order = Vec::new();
    let mut state = vec![0u8; stages.len()];
    visit(target, &stages, &mut state, &mut order, &mut diags, df);
    Analysis {
        meta,
        meta_declared,
        stages,
        target,
        order,
        diagnostics: diags,
        used_args,
    }
}

fn visit(
    i: usize,
    stages: &[Stage],
    state: &mut [u8],
    order: &mut Vec<usize>,
    diags: &mut Vec<Diagnostic>,
    df: &Dockerfile,
) {
    match state[i] {
        2 => return,
        1 => {
            let s = &stages[i];
            diags.push(
                Diagnostic::error(
                    format!("circular dependency detected on stage: {}", s.label()),
                    df.instructions[s.from].span,
                )
                .with_code("stage-cycle")
                .with_hint("a stage cannot copy from itself or from a stage that depends on it"),
            );
            return;
        }
        _ => {}
    }
    state[i] = 1;
    if let Base::Stage(b) = stages[i].base {
        visit(b, stages, state, order, diags, df);
    }
    for (dep, _, _) in &stages[i].deps {
        if let Source::Stage(d) = dep {
            visit(*d, stages, state, order, diags, df);
        }
    }
    state[i] = 2;
    order.push(i);
}

/// Resolves a `--from` value (not expanded) to a stage, an index or an image.
pub(crate) fn resolve_from(
    value: &str,
    current: usize,
    names: &[Option<String>],
    span: Span,
) -> Result<Source, Diagnostic> {
    let lower = value.to_ascii_lowercase();
    if let Some(i) = names
        .iter()
        .position(|n| n.as_deref() == Some(lower.as_str()))
    {
        return Ok(Source::Stage(i));
    }
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<usize>() {
            Ok(i) if i < current => Ok(Source::Stage(i)),
            _ => Err(Diagnostic::error(
                format!("invalid stage index {value}: only earlier stages can be referenced"),
                span,
            )
            .with_code("invalid-stage-index")
            .with_hint(format!(
                "this is stage {current}; stages are numbered from 0"
            ))),
        };
    }
    if lower == "scratch" {
        return Ok(Source::Scratch);
    }
    if value.contains('$') {
        let var = value
            .trim_start_matches('$')
            .trim_start_matches('{')
            .trim_end_matches('}');
        return Err(Diagnostic::error("--from is not expanded: variables are not substituted in --from", span)
            .with_code("from-not-expanded")
            .with_label("this is taken literally")
            .with_hint(format!(
                "name the image in a stage instead: `FROM ${{{var}}} AS src` (with `ARG {var}` before the first FROM), then `--from=src`"
            )));
    }
    match Reference::parse(value) {
        Ok(r) => Ok(Source::Image(r)),
        Err(e) => {
            let mut d = Diagnostic::error(
                format!("--from={value}: not a stage name and not a valid image reference: {e}"),
                span,
            )
            .with_code("invalid-reference")
            .with_hint(reference_hint(value));
            if let Some(s) = suggest::closest(&lower, names.iter().filter_map(|n| n.as_deref())) {
                d = d.with_hint(format!("did you mean the stage {s:?}?"));
            }
            Err(d)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn collect_deps(
    ins: &Instruction,
    si: usize,
    names: &[Option<String>],
    meta: &[(String, String)],
    escape: char,
    opts: &BuildOptions,
    deps: &mut Vec<(Source, Span, usize)>,
    diags: &mut Vec<Diagnostic>,
) {
    match &ins.command {
        Command::Copy(c) | Command::Add(c) => {
            if let Some(from) = &c.from {
                match resolve_from(&from.text, si, names, from.span) {
                    Ok(Source::Stage(i)) if i == si => diags.push(
                        Diagnostic::error(
                            format!(
                                "stage {} cannot copy from itself",
                                names[si].clone().unwrap_or(si.to_string())
                            ),
                            from.span,
                        )
                        .with_code("stage-cycle"),
                    ),
                    Ok(s) => deps.push((s, from.span, ins.start_line)),
                    Err(d) => diags.push(d),
                }
            }
        }
        Command::Run(r) => {
            // Mount `from=` values are expanded; the stage's ARGs are approximated by the
            // global ones and the build args here (phase two expands them exactly).
            let mut env: Vec<(String, String)> = meta.to_vec();
            env.extend(opts.build_args.iter().map(|(k, v)| (k.clone(), v.clone())));
            let lexer = Lexer::new(escape);
            for m in &r.mounts {
                let mut expand =
                    |v: &str| lexer.expand(v, &env).map(|e| e.text).map_err(|e| e.message);
                let Ok(mount) = drydock_dockerfile::flags::parse_mount(&m.raw.text, 0, &mut expand)
                else {
                    continue;
                };
                if let Some(from) = mount.from() {
                    match resolve_from(from, si, names, m.raw.span) {
                        Ok(Source::Stage(i)) if i == si => {}
                        Ok(s) => deps.push((s, m.raw.span, ins.start_line)),
                        Err(d) => diags.push(d),
                    }
                }
            }
        }
        _ => {}
    }
    let _ = NoEnv;
}

/// Build args that no ARG consumed (BuildKit warns about these).
pub fn unused_build_args(opts: &BuildOptions, used: &BTreeSet<String>) -> Vec<String> {
    opts.build_args
        .keys()
        .filter(|k| {
            !used.contains(*k) && !PROXY_ARGS.contains(&k.as_str()) && !k.starts_with("BUILDKIT_")
        })
        .cloned()
        .collect()
}

/// The stage a name refers to, for messages.
pub fn stage_names(a: &Analysis) -> BTreeMap<usize, String> {
    a.stages.iter().map(|s| (s.index, s.label())).collect()
}
