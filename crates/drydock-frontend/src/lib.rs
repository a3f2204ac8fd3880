//! The Dockerfile frontend: a parsed Dockerfile plus build args, target and platform become a
//! [`drydock_plan::Plan`]. Pure: no IO, no clock; the caller resolves images and reads files.
//!
//! Two phases, so the caller can do the network work in between:
//!
//! 1. [`base_images`] lists the images the target needs (stage bases, `COPY --from=<image>`,
//!    `RUN --mount=from=<image>`), each with the platform to resolve it for.
//! 2. [`convert`] takes the resolved digests and configs and produces the plan, leaving out
//!    stages the target does not need, plus warnings from the build checks.
//!
//! [`check`] runs everything for `drydock build --check` without resolving anything.
//!
//! - [`options`]: [`BuildOptions`], [`ImageRequest`], [`ResolvedImage`], [`Resolved`].
//! - [`analyze`]: stages, global ARGs and the automatic platform ARGs, target selection and
//!   stage dependencies (phase one).
//! - `convert`: dispatch of every instruction into plan operations (phase two).

pub mod analyze;
mod convert;
pub mod options;

use drydock_diagnostics::{Diagnostic, Span};
use drydock_dockerfile::{CheckConfig, Dockerfile, lint};
use drydock_plan::Plan;

pub use options::{BuildOptions, ImageRequest, Resolved, ResolvedImage};

/// A successful conversion.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub plan: Plan,
    /// Build-check warnings and notes (already filtered by `# check=`).
    pub warnings: Vec<Diagnostic>,
}

/// What `drydock build --check` reports.
#[derive(Debug, Clone)]
pub struct Report {
    pub dockerfile: Dockerfile,
    /// Every diagnostic, in source order, after `# check=skip=...;error=true`.
    pub diagnostics: Vec<Diagnostic>,
    /// The images a build would resolve.
    pub images: Vec<ImageRequest>,
    /// The plan with placeholder digests for unresolved images (not executable).
    pub plan: Option<Plan>,
    pub check_config: CheckConfig,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Phase one: the images the build needs. Errors (parse errors, bad stage references, an
/// unknown target) come back as diagnostics.
pub fn base_images(
    df: &Dockerfile,
    opts: &BuildOptions,
) -> Result<Vec<ImageRequest>, Vec<Diagnostic>> {
    let mut errors: Vec<Diagnostic> = df
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    let a = analyze::analyze(df, opts);
    errors.extend(a.diagnostics.iter().filter(|d| d.is_error()).cloned());
    if !errors.is_empty() {
        return Err(finish(errors));
    }
    Ok(a.image_requests(df))
}

/// Phase two: the plan. `resolved` must hold every image [`base_images`] returned (unless
/// `opts.allow_unresolved`). On error, all diagnostics (errors and warnings) are returned.
pub fn convert(
    df: &Dockerfile,
    opts: &BuildOptions,
    resolved: &Resolved,
) -> Result<Conversion, Vec<Diagnostic>> {
    let (plan, diags, _) = run_all(df, opts, resolved);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    match plan {
        Some(plan) => Ok(Conversion {
            plan,
            warnings: diags,
        }),
        None => Err(diags),
    }
}

/// Parses, checks and plans `source` without resolving images: what `drydock build --check`
/// does.
pub fn check(source: &str, opts: &BuildOptions) -> Report {
    let df = drydock_dockerfile::parse(source);
    let mut opts = opts.clone();
    opts.allow_unresolved = true;
    let (plan, diagnostics, cfg) = run_all(&df, &opts, &Resolved::new());
    let a = analyze::analyze(&df, &opts);
    let images = a.image_requests(&df);
    Report {
        dockerfile: df,
        diagnostics,
        images,
        plan,
        check_config: cfg,
    }
}

fn run_all(
    df: &Dockerfile,
    opts: &BuildOptions,
    resolved: &Resolved,
) -> (Option<Plan>, Vec<Diagnostic>, CheckConfig) {
    let (cfg, mut diags) = CheckConfig::for_dockerfile(
        df,
        opts.build_args
            .get("BUILDKIT_DOCKERFILE_CHECK")
            .map(String::as_str),
    );
    diags.extend(df.diagnostics.iter().cloned());
    diags.extend(lint::check(df));
    let a = analyze::analyze(df, opts);
    diags.extend(a.diagnostics.iter().cloned());
    let mut plan = None;
    if !df.has_errors() && !a.has_errors() {
        let conv = convert::Converter::new(df, opts, &a, resolved).run();
        let (p, used) = (conv.plan, conv.used_args);
        diags.extend(conv.diagnostics);
        let json_args = Some(lint::JSON_ARGS_RECOMMENDED.name);
        diags.retain(|d| !(d.code.as_deref() == json_args && conv.shell_chosen.contains(&d.span)));
        for k in analyze::unused_build_args(opts, &used) {
            let mut d = Diagnostic::warning(
                format!("build argument {k:?} was not consumed by any ARG"),
                Span::point(0),
            )
            .with_code("unused-build-arg");
            let declared: Vec<&str> = a.meta_declared.iter().map(String::as_str).collect();
            if let Some(s) = drydock_dockerfile::suggest::closest(&k, declared) {
                d = d.with_hint(format!("did you mean {s}?"));
            } else {
                d = d.with_hint(format!("declare it where it is used: ARG {k}"));
            }
            diags.push(d);
        }
        if !diags.iter().any(Diagnostic::is_error) {
            plan = p;
        }
    }
    let diags = cfg.apply(finish(diags));
    if diags.iter().any(Diagnostic::is_error) {
        plan = None;
    }
    (plan, diags, cfg)
}

/// Source order, duplicates removed.
fn finish(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by(|a, b| {
        a.span
            .start
            .cmp(&b.span.start)
            .then(a.span.end.cmp(&b.span.end))
    });
    let mut out: Vec<Diagnostic> = Vec::with_capacity(diags.len());
    for d in diags {
        if !out
            .iter()
            .any(|o| o.span == d.span && o.message == d.message)
        {
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use drydock_oci::Platform;

    fn opts() -> BuildOptions {
        BuildOptions::new(Platform::parse("linux/amd64").unwrap())
    }

    #[test]
    fn check_plans_without_resolving_and_lists_images() {
        let r = check(
            "FROM alpine:3.19 AS a\nRUN true\nFROM a\nCOPY --from=nginx /x /x\n",
            &opts(),
        );
        assert!(!r.has_errors(), "{:?}", r.diagnostics);
        let refs: Vec<String> = r.images.iter().map(|i| i.reference.to_string()).collect();
        assert_eq!(
            refs,
            [
                "docker.io/library/alpine:3.19",
                "docker.io/library/nginx:latest"
            ]
        );
        assert!(r.plan.is_some());
    }

    #[test]
    fn check_reports_undefined_vars_but_not_common_image_env() {
        let r = check(
            "FROM golang\nENV A=$GOPATH/bin:$PATH B=$MY_UNDEFINED\n",
            &opts(),
        );
        let msgs: Vec<&str> = r.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(msgs, ["Usage of undefined variable '$MY_UNDEFINED'"]);
        assert!(
            r.diagnostics[0]
                .hints
                .iter()
                .any(|h| h.contains("base image was not resolved"))
        );
    }

    #[test]
    fn convert_requires_resolved_images() {
        let df = drydock_dockerfile::parse("FROM alpine\n");
        let err = convert(&df, &opts(), &Resolved::new()).unwrap_err();
        assert_eq!(err[0].code.as_deref(), Some("unresolved-image"));
    }

    #[test]
    fn plan_digest_ignores_comments_and_depends_on_build_args() {
        let resolve = |src: &str, o: &BuildOptions| {
            let df = drydock_dockerfile::parse(src);
            let mut r = Resolved::new();
            for req in base_images(&df, o).unwrap() {
                let digest = drydock_oci::Digest::sha256(req.reference.to_string().as_bytes());
                r.insert(
                    &req.reference,
                    &req.platform,
                    ResolvedImage {
                        digest,
                        config: Default::default(),
                    },
                );
            }
            convert(&df, o, &r).unwrap().plan.digest()
        };
        let a = resolve("FROM alpine\nARG V=1\nRUN echo $V\n", &opts());
        let b = resolve(
            "# a comment\n\nFROM alpine\nARG V=1\nRUN echo $V # same\n",
            &opts(),
        );
        assert_ne!(a, b, "the RUN text differs, so the plan does");
        let c = resolve(
            "# a comment\n\nFROM alpine\nARG V=1\nRUN echo $V\n",
            &opts(),
        );
        assert_eq!(a, c, "comments and blank lines do not change the plan");
        let mut o = opts();
        o.build_args.insert("V".into(), "2".into());
        assert_ne!(a, resolve("FROM alpine\nARG V=1\nRUN echo $V\n", &o));
        let mut p = opts();
        p.build_args
            .insert("HTTP_PROXY".into(), "http://proxy:3128".into());
        assert_eq!(
            a,
            resolve("FROM alpine\nARG V=1\nRUN echo $V\n", &p),
            "proxies are not part of the digest"
        );
    }

    #[test]
    fn secrets_are_referenced_by_id_only() {
        let r = check(
            "FROM alpine\nRUN --mount=type=secret,id=tok,env=TOKEN ./use\n",
            &opts(),
        );
        let json = r.plan.unwrap().to_json_pretty();
        assert!(json.contains("\"id\": \"tok\"") && json.contains("\"env\": \"TOKEN\""));
    }
}
