//! Phase two: dispatch every instruction of the needed stages into plan operations.

use std::collections::BTreeSet;

use drydock_diagnostics::{Diagnostic, Span};
use drydock_dockerfile::dockerignore::clean_path;
use drydock_dockerfile::expand::Lexer;
use drydock_dockerfile::lint::{COPY_IGNORED_FILE, UNDEFINED_VAR};
use drydock_dockerfile::{
    Command, CommandLine, Copy, Dockerfile, Healthcheck, Instruction, Mount, NetworkMode,
    SecurityMode, Sharing, suggest,
};
use drydock_oci::{Digest, Platform, Reference};
use drydock_plan::{
    CacheSharing, CopyAction, Empty, ExecMount, ExecOp, FileAction, FileOp, GitSource,
    HealthConfig, History, HttpSource, ImageConfig, ImageSource, LocalSource, Location, MergeOp,
    MountKind, Network, Op, OpId, Owner, Plan, PlanBuilder, Security, Step,
};

use crate::analyze::{
    Analysis, Base, PROXY_ARGS, Source, platform_args, platform_string, resolve_from,
    word_error_span,
};
use crate::options::{BuildOptions, Resolved};

/// Variables base images commonly set (a trailing `_` matches a prefix); UndefinedVar does not
/// report them when the base image's config is unknown.
const COMMON_IMAGE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "HOSTNAME",
    "TERM",
    "LANG",
    "LANGUAGE",
    "LC_",
    "USER",
    "SHELL",
    "TZ",
    "DEBIAN_FRONTEND",
    "GOPATH",
    "GOROOT",
    "GOLANG_",
    "GO_",
    "GOTOOLCHAIN",
    "JAVA_",
    "JDK_",
    "JRE_",
    "MAVEN_",
    "GRADLE_",
    "NODE_",
    "NPM_",
    "YARN_",
    "PYTHON",
    "PIP_",
    "RUBY_",
    "GEM_",
    "BUNDLE_",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUST_",
    "PHP_",
    "NGINX_",
    "HTTPD_",
    "DOTNET_",
    "ASPNETCORE_",
    "ERLANG_",
    "ELIXIR_",
    "OTP_",
    "SSL_CERT_",
];

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// What phase two produced.
pub(crate) struct Converted {
    pub plan: Option<Plan>,
    pub diagnostics: Vec<Diagnostic>,
    pub used_args: BTreeSet<String>,
    /// Where JSONArgsRecommended does not apply: the stage's image chose its shell on purpose
    /// (a SHELL instruction or the base image's config), as BuildKit decides.
    pub shell_chosen: Vec<Span>,
}

/// A converted stage.
#[derive(Debug, Clone)]
struct StageOut {
    root: OpId,
    config: ImageConfig,
    history: Vec<Step>,
    /// Whether the base image's config was known (UndefinedVar needs it).
    env_known: bool,
}

/// Per-stage dispatch state.
struct St {
    root: OpId,
    config: ImageConfig,
    history: Vec<Step>,
    /// The build-time environment: config env plus ARG values.
    env: Vec<(String, String)>,
    /// ARGs declared in the stage (value, if any).
    args: Vec<(String, Option<String>)>,
    shell: Vec<String>,
    cmd_set: bool,
    env_known: bool,
    platform: Platform,
    stage: String,
}

impl St {
    fn set_env(&mut self, k: &str, v: &str) {
        match self.env.iter_mut().find(|(ek, _)| ek == k) {
            Some(e) => e.1 = v.to_string(),
            None => self.env.push((k.to_string(), v.to_string())),
        }
    }
}

pub(crate) struct Converter<'a> {
    df: &'a Dockerfile,
    opts: &'a BuildOptions,
    a: &'a Analysis,
    resolved: &'a Resolved,
    lexer: Lexer,
    pub b: PlanBuilder,
    pub diags: Vec<Diagnostic>,
    done: Vec<Option<StageOut>>,
    pub used_args: BTreeSet<String>,
    names: Vec<Option<String>>,
    /// Shell-form CMD/ENTRYPOINT arguments in stages whose image has an explicit shell (from
    /// SHELL or the base image): JSONArgsRecommended does not apply to them.
    pub shell_chosen: Vec<Span>,
}

fn loc(file: &str, ins: &Instruction, stage: &str) -> Location {
    Location {
        file: file.to_string(),
        start_line: ins.start_line,
        end_line: ins.end_line,
        start: ins.span.start,
        end: ins.span.end,
        stage: stage.to_string(),
    }
}

/// `path.Join` + `path.Clean` of a destination against the working directory.
fn abs_path(workdir: &str, p: &str) -> String {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{}", if workdir.is_empty() { "/" } else { workdir }, p)
    };
    clean_path(&joined)
}

fn go_quote_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// Go's `fmt.Sprintf("%q", *HealthConfig)`, which BuildKit writes into the history.
fn go_health(h: &HealthConfig) -> String {
    let d = |n: i64| format!("{:?}", drydock_dockerfile::Duration(n).to_string());
    let retries = match h.retries {
        r @ 0..=31 => format!("'\\x{r:02x}'"),
        r => match char::from_u32(r as u32) {
            Some(c) => format!("{c:?}"),
            None => r.to_string(),
        },
    };
    format!(
        "&{{{} {} {} {} {} {retries}}}",
        go_quote_list(&h.test),
        d(h.interval),
        d(h.timeout),
        d(h.start_period),
        d(h.start_interval)
    )
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn is_git(s: &str) -> bool {
    let base = s.split('#').next().unwrap_or(s);
    s.starts_with("git@")
        || s.starts_with("git://")
        || s.starts_with("ssh://")
        || ((s.starts_with("https://") || s.starts_with("http://")) && base.ends_with(".git"))
        || s.starts_with("github.com/")
}

impl<'a> Converter<'a> {
    pub fn new(
        df: &'a Dockerfile,
        opts: &'a BuildOptions,
        a: &'a Analysis,
        resolved: &'a Resolved,
    ) -> Self {
        Self {
            df,
            opts,
            a,
            resolved,
            lexer: Lexer::new(df.escape()),
            b: PlanBuilder::new(),
            diags: Vec::new(),
            done: vec![None; a.stages.len()],
            used_args: a.used_args.clone(),
            names: a.stages.iter().map(|s| s.name.clone()).collect(),
            shell_chosen: Vec::new(),
        }
    }

    /// Converts the target and returns the plan.
    pub fn run(mut self) -> Converted {
        for &i in &self.a.order.clone() {
            self.stage(i);
        }
        let t = self.a.target;
        let plan = self.done.get(t).cloned().flatten().map(|out| {
            let platform = self.a.stages[t].platform.clone();
            self.b.finish(
                platform_string(&platform),
                out.root,
                out.config,
                out.history,
            )
        });
        Converted {
            plan,
            diagnostics: self.diags,
            used_args: self.used_args,
            shell_chosen: self.shell_chosen,
        }
    }

    fn image(
        &mut self,
        r: &Reference,
        platform: &Platform,
        span: Span,
    ) -> Option<(OpId, ImageConfig, bool)> {
        match self.resolved.get(r, platform) {
            Some(img) => {
                let id = self.b.add(Op::Image(ImageSource {
                    reference: r.to_string(),
                    digest: img.digest.clone(),
                    platform: platform_string(platform),
                }));
                Some((id, img.config.clone(), true))
            }
            None if self.opts.allow_unresolved => {
                let digest = Digest::sha256(format!("unresolved {r} {platform}").as_bytes());
                let id = self.b.add(Op::Image(ImageSource {
                    reference: r.to_string(),
                    digest,
                    platform: platform_string(platform),
                }));
                Some((id, ImageConfig::default(), false))
            }
            None => {
                self.diags.push(
                    Diagnostic::error(format!("image {r} for {platform} was not resolved"), span)
                        .with_code("unresolved-image")
                        .with_hint(
                            "resolve every image from base_images() before calling convert()",
                        ),
                );
                None
            }
        }
    }

    fn source_root(&mut self, src: &Source, platform: &Platform, span: Span) -> Option<OpId> {
        match src {
            Source::Scratch => Some(self.b.add(Op::Scratch)),
            Source::Stage(i) => self.done.get(*i).cloned().flatten().map(|s| s.root),
            Source::Image(r) => self.image(r, platform, span).map(|(id, _, _)| id),
        }
    }

    fn stage(&mut self, si: usize) {
        let stage = self.a.stages[si].clone();
        let from_ins = &self.df.instructions[stage.from];
        let label = stage.label();
        let image_span = match &from_ins.command {
            Command::From(f) => f.image.span,
            _ => from_ins.span,
        };
        let (root, mut config, history, env_known) = match &stage.base {
            Base::Scratch => (
                self.b.add(Op::Scratch),
                ImageConfig::default(),
                Vec::new(),
                true,
            ),
            Base::Stage(b) => match self.done.get(*b).cloned().flatten() {
                Some(s) => (s.root, s.config, s.history, s.env_known),
                None => return,
            },
            Base::Image(r) => match self.image(r, &stage.platform, image_span) {
                Some((id, c, known)) => (id, c, Vec::new(), known),
                None => return,
            },
        };
        self.b
            .locate(&root, loc(&self.opts.file_name, from_ins, &label));
        config.os = stage.platform.os.clone();
        config.architecture = stage.platform.architecture.clone();
        config.variant = match (&*stage.platform.architecture, &stage.platform.variant) {
            ("arm64", Some(v)) if v == "v8" => None,
            (_, v) => v.clone(),
        };
        if config.env_get("PATH").is_none() {
            config.env_set("PATH", DEFAULT_PATH);
        }
        // BuildKit records the root as the working directory when the base has none.
        if config.config.working_dir.is_empty() {
            config.config.working_dir = "/".into();
        }
        let triggers = std::mem::take(&mut config.config.on_build);
        let env: Vec<(String, String)> = config
            .config
            .env
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect();
        let shell = if config.config.shell.is_empty() {
            vec!["/bin/sh".to_string(), "-c".to_string()]
        } else {
            config.config.shell.clone()
        };
        let mut st = St {
            root,
            config,
            history,
            env,
            args: Vec::new(),
            shell,
            cmd_set: false,
            env_known,
            platform: stage.platform.clone(),
            stage: label.clone(),
        };
        // ONBUILD triggers of the base run first, as if written right after FROM.
        if !triggers.is_empty() {
            let text = triggers.join("\n");
            let sub = drydock_dockerfile::parse(&text);
            for d in sub.diagnostics.iter().filter(|d| d.is_error()) {
                self.diags.push(
                    Diagnostic::error(
                        format!("ONBUILD trigger of the base image: {}", d.message),
                        from_ins.span,
                    )
                    .with_code("invalid-onbuild-trigger"),
                );
            }
            for ins in &sub.instructions {
                let mut ins = ins.clone();
                ins.span = from_ins.span;
                ins.start_line = from_ins.start_line;
                ins.end_line = from_ins.end_line;
                let rebased = rebase_spans(ins, from_ins.span);
                self.dispatch(&mut st, &rebased, si);
            }
        }
        for idx in stage.body.clone() {
            let ins = &self.df.instructions[idx];
            self.dispatch(&mut st, ins, si);
        }
        self.done[si] = Some(StageOut {
            root: st.root,
            config: st.config,
            history: st.history,
            env_known: st.env_known,
        });
    }

    fn expand(&mut self, st: &St, text: &str, span: Span) -> Option<String> {
        match self.lexer.expand(text, &st.env) {
            Ok(e) => {
                {
                    for name in &e.unmatched {
                        if st.args.iter().any(|(k, _)| k == name) {
                            continue;
                        }
                        // Without the base image's config (`--check` resolves nothing), skip
                        // the variables base images commonly set.
                        if !st.env_known
                            && COMMON_IMAGE_ENV
                                .iter()
                                .any(|c| c == name || (c.ends_with('_') && name.starts_with(c)))
                        {
                            continue;
                        }
                        let keys: Vec<&str> = st.env.iter().map(|(k, _)| k.as_str()).collect();
                        let mut msg = format!("Usage of undefined variable '${name}'");
                        if let Some(s) = suggest::closest(name, keys) {
                            msg.push_str(&format!(" (did you mean ${s}?)"));
                        }
                        let mut d = UNDEFINED_VAR.diagnostic(msg, span);
                        if self.a.meta_declared.contains(name) {
                            d = d.with_hint(format!(
                                "{name} is a global ARG: global ARGs are only visible in FROM; redeclare it in this stage with `ARG {name}`"
                            ));
                        } else if platform_args(self.opts).iter().any(|(k, _)| k == name) {
                            d = d.with_hint(format!("{name} is set automatically but must be declared in the stage: `ARG {name}`"));
                        } else if !st.env_known {
                            d = d.with_hint(format!(
                                "the base image was not resolved, so its ENV is unknown here: if it sets {name}, ignore this"
                            ));
                        }
                        self.diags.push(d);
                    }
                }
                Some(e.text)
            }
            Err(e) => {
                self.diags.push(
                    Diagnostic::error(
                        e.message.clone(),
                        word_error_span(span, text.len(), e.offset),
                    )
                    .with_code("expansion-error")
                    .with_hint("quote or escape the `$` if it is meant literally"),
                );
                None
            }
        }
    }

    fn commit(&mut self, st: &mut St, mut created_by: String, layer: bool) {
        if layer {
            created_by.push_str(" # buildkit");
        }
        st.history.push(Step {
            history: History {
                created_by,
                comment: Some(HISTORY_COMMENT.into()),
                empty_layer: !layer,
            },
            op: layer.then(|| st.root.clone()),
        });
    }

    /// Dispatches one instruction; every operation it creates is mapped back to it.
    fn dispatch(&mut self, st: &mut St, ins: &Instruction, si: usize) {
        let before = self.b.len();
        self.dispatch_inner(st, ins, si);
        let location = loc(&self.opts.file_name, ins, &st.stage);
        for id in self.b.ids_since(before) {
            self.b.locate(&id, location.clone());
        }
    }

    fn dispatch_inner(&mut self, st: &mut St, ins: &Instruction, si: usize) {
        let file = self.opts.file_name.clone();
        let location = loc(&file, ins, &st.stage);
        match &ins.command {
            Command::Invalid | Command::From(_) => {}
            Command::Env(kvs) => {
                let mut pairs = Vec::new();
                for kv in kvs {
                    let (Some(k), Some(v)) = (
                        self.expand(st, &kv.key.text, kv.key.span),
                        self.expand(st, &kv.value.text, kv.value.span),
                    ) else {
                        return;
                    };
                    pairs.push((k, v));
                }
                let mut parts = Vec::new();
                for (k, v) in pairs {
                    st.set_env(&k, &v);
                    st.config.env_set(&k, &v);
                    parts.push(format!("{k}={v}"));
                }
                self.commit(st, format!("ENV {}", parts.join(" ")), false);
            }
            Command::Arg(args) => {
                // Every default is expanded with the environment from before the instruction
                // (`ARG A=1 B=$A` leaves B empty, as BuildKit does).
                let mut decls = Vec::new();
                for a in args {
                    let Some(key) = self.expand(st, &a.name.text, a.name.span) else {
                        return;
                    };
                    let default = match &a.default {
                        Some(d) => match self.expand(st, &d.text, d.span) {
                            Some(v) => Some(v),
                            None => return,
                        },
                        None => None,
                    };
                    decls.push((key, default));
                }
                let mut parts = Vec::new();
                for (key, default) in decls {
                    let value = if let Some(v) = self.opts.build_args.get(&key) {
                        self.used_args.insert(key.clone());
                        Some(v.clone())
                    } else if default.is_some() {
                        default.clone()
                    } else {
                        self.a
                            .meta
                            .iter()
                            .rev()
                            .find(|(k, _)| *k == key)
                            .map(|(_, v)| v.clone())
                    };
                    parts.push(match &default {
                        Some(d) => format!("{key}={d}"),
                        None => key.clone(),
                    });
                    if let Some(v) = &value {
                        st.set_env(&key, v);
                    }
                    st.args.retain(|(k, _)| *k != key);
                    st.args.push((key, value));
                }
                self.commit(st, format!("ARG {}", parts.join(" ")), false);
            }
            Command::Label(kvs) => {
                let mut parts = Vec::new();
                for kv in kvs {
                    let (Some(k), Some(v)) = (
                        self.expand(st, &kv.key.text, kv.key.span),
                        self.expand(st, &kv.value.text, kv.value.span),
                    ) else {
                        return;
                    };
                    parts.push(format!("{k}={v}"));
                    st.config.config.labels.insert(k, v);
                }
                self.commit(st, format!("LABEL {}", parts.join(" ")), false);
            }
            Command::Maintainer(w) => {
                st.config.author = Some(w.text.clone());
                self.commit(st, format!("MAINTAINER {}", w.text), false);
            }
            Command::User(w) => {
                let Some(u) = self.expand(st, &w.text, w.span) else {
                    return;
                };
                st.config.config.user = u.clone();
                self.commit(st, format!("USER {u}"), false);
            }
            Command::Workdir(w) => {
                let Some(p) = self.expand(st, &w.text, w.span) else {
                    return;
                };
                let wd = abs_path(&st.config.config.working_dir, &p);
                st.config.config.working_dir = wd.clone();
                let layer = wd != "/";
                if layer {
                    let owner = (!st.config.config.user.is_empty())
                        .then(|| Owner::parse(&st.config.config.user));
                    let id = self.b.add(Op::File(FileOp {
                        base: Some(st.root.clone()),
                        actions: vec![FileAction::Mkdir {
                            path: wd.clone(),
                            mode: 0o755,
                            make_parents: true,
                            owner,
                        }],
                    }));
                    self.b.locate(&id, location);
                    st.root = id;
                }
                self.commit(st, format!("WORKDIR {wd}"), layer);
            }
            Command::Expose(ports) => {
                let mut added = Vec::new();
                for p in ports {
                    let Some(v) = self.expand(st, &p.text, p.span) else {
                        return;
                    };
                    match parse_port(&v) {
                        Ok(list) => {
                            for port in list {
                                added.push(port.clone());
                                st.config.config.exposed_ports.insert(port, Empty {});
                            }
                        }
                        Err(e) => {
                            self.diags.push(
                                Diagnostic::error(e, p.span)
                                    .with_code("invalid-port")
                                    .with_hint("EXPOSE <port>[/tcp|udp|sctp], e.g. EXPOSE 8080 or EXPOSE 53/udp or EXPOSE 8000-8010"),
                            );
                            return;
                        }
                    }
                }
                added.sort();
                added.dedup();
                let map: Vec<String> = added.iter().map(|p| format!("{p}:{{}}")).collect();
                self.commit(st, format!("EXPOSE map[{}]", map.join(" ")), false);
            }
            Command::Volume(vols) => {
                let mut list = Vec::new();
                for w in vols {
                    let Some(v) = self.expand(st, &w.text, w.span) else {
                        return;
                    };
                    if v.trim().is_empty() {
                        self.diags.push(
                            Diagnostic::error(
                                "VOLUME specified can not be an empty string",
                                w.span,
                            )
                            .with_code("invalid-volume"),
                        );
                        return;
                    }
                    st.config.config.volumes.insert(v.clone(), Empty {});
                    list.push(v);
                }
                self.commit(st, format!("VOLUME [{}]", list.join(" ")), false);
            }
            Command::Stopsignal(w) => {
                let Some(s) = self.expand(st, &w.text, w.span) else {
                    return;
                };
                if !valid_signal(&s) {
                    self.diags.push(
                        Diagnostic::error(format!("invalid signal: {s}"), w.span)
                            .with_code("invalid-signal")
                            .with_hint(
                                "use a signal name such as SIGTERM or SIGQUIT, or its number",
                            ),
                    );
                    return;
                }
                st.config.config.stop_signal = s.clone();
                self.commit(st, format!("STOPSIGNAL {s}"), false);
            }
            Command::Cmd(c) => {
                if !c.is_exec() && !st.config.config.shell.is_empty() {
                    self.shell_chosen.push(ins.args.span);
                }
                let args = self.cmdline(st, c);
                self.commit(st, format!("CMD {}", go_quote_list(&args)), false);
                // BuildKit sets this on every CMD (and never on ENTRYPOINT).
                st.config.config.args_escaped = true;
                st.config.config.cmd = Some(args);
                st.cmd_set = true;
            }
            Command::Entrypoint(c) => {
                if !c.is_exec() && !st.config.config.shell.is_empty() {
                    self.shell_chosen.push(ins.args.span);
                }
                let args = self.cmdline(st, c);
                self.commit(st, format!("ENTRYPOINT {}", go_quote_list(&args)), false);
                st.config.config.entrypoint = Some(args);
                if !st.cmd_set {
                    st.config.config.cmd = None;
                }
            }
            Command::Shell(words) => {
                let s: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
                st.shell = s.clone();
                self.commit(st, format!("SHELL [{}]", s.join(" ")), false);
                st.config.config.shell = s;
            }
            Command::Healthcheck(h) => {
                let hc = match h {
                    Healthcheck::None => HealthConfig {
                        test: vec!["NONE".into()],
                        ..Default::default()
                    },
                    Healthcheck::Cmd {
                        command,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => {
                        let test = match command {
                            CommandLine::Exec(w) => {
                                let mut t = vec!["CMD".to_string()];
                                t.extend(w.iter().map(|w| w.text.clone()));
                                t
                            }
                            CommandLine::Shell(w) => vec!["CMD-SHELL".into(), w.text.clone()],
                        };
                        HealthConfig {
                            test,
                            interval: interval.map_or(0, |d| d.0),
                            timeout: timeout.map_or(0, |d| d.0),
                            start_period: start_period.map_or(0, |d| d.0),
                            start_interval: start_interval.map_or(0, |d| d.0),
                            retries: retries.unwrap_or(0),
                        }
                    }
                };
                self.commit(st, format!("HEALTHCHECK {}", go_health(&hc)), false);
                st.config.config.healthcheck = Some(hc);
            }
            Command::Onbuild(sub) => {
                let trigger = ins
                    .original
                    .get(ins.keyword_word.text.len()..)
                    .unwrap_or("")
                    .trim_start()
                    .to_string();
                let _ = sub;
                st.config.config.on_build.push(trigger);
            }
            Command::Run(r) => self.dispatch_run(st, ins, r, si, location),
            Command::Copy(c) => self.copy(st, ins, c, false, si, location),
            Command::Add(c) => self.copy(st, ins, c, true, si, location),
        }
    }

    fn cmdline(&self, st: &St, c: &CommandLine) -> Vec<String> {
        match c {
            CommandLine::Exec(w) => w.iter().map(|w| w.text.clone()).collect(),
            CommandLine::Shell(w) => {
                let mut v = st.shell.clone();
                if !w.text.is_empty() {
                    v.push(w.text.clone());
                }
                v
            }
        }
    }

    fn dispatch_run(
        &mut self,
        st: &mut St,
        ins: &Instruction,
        r: &drydock_dockerfile::Run,
        si: usize,
        location: Location,
    ) {
        let mut mounts_extra: Vec<ExecMount> = Vec::new();
        let mut args = match &r.command {
            CommandLine::Exec(w) => w.iter().map(|w| w.text.clone()).collect::<Vec<_>>(),
            CommandLine::Shell(w) => {
                let mut cmd = w.text.clone();
                if !ins.heredocs.is_empty() {
                    let single = ins.heredocs.len() == 1 && {
                        let t = cmd.trim();
                        t.starts_with("<<") && !t.contains(char::is_whitespace)
                    };
                    if single {
                        let doc = &ins.heredocs[0];
                        let data = doc.body();
                        if data.starts_with("#!") {
                            // A script with a shebang: mount it and execute it directly.
                            let file = self.b.add(Op::File(FileOp {
                                base: None,
                                actions: vec![FileAction::Mkfile {
                                    path: format!("/{}", doc.name),
                                    data,
                                    mode: 0o755,
                                    owner: None,
                                }],
                            }));
                            mounts_extra.push(ExecMount {
                                target: Some("/dev/pipes/".into()),
                                kind: MountKind::Bind {
                                    input: Some(file),
                                    selector: "/".into(),
                                    readonly: true,
                                },
                            });
                            let v = vec![format!("/dev/pipes/{}", doc.name)];
                            // Exec form: no shell prefix.
                            self.finish_run(st, r, si, location, v, mounts_extra);
                            return;
                        }
                        cmd = data;
                    } else {
                        for d in &ins.heredocs {
                            cmd.push('\n');
                            cmd.push_str(&d.content);
                            cmd.push_str(&d.name);
                        }
                    }
                }
                let mut v = st.shell.clone();
                v.push(cmd);
                v
            }
        };
        if args.is_empty() {
            args = st.shell.clone();
        }
        self.finish_run(st, r, si, location, args, mounts_extra);
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_run(
        &mut self,
        st: &mut St,
        r: &drydock_dockerfile::Run,
        si: usize,
        location: Location,
        args: Vec<String>,
        mut mounts: Vec<ExecMount>,
    ) {
        let mut ssh_index = 0;
        for m in &r.mounts {
            let lexer = self.lexer;
            let env = st.env.clone();
            let mut unmatched = BTreeSet::new();
            let mut expand = |v: &str| {
                lexer
                    .expand(v, &env)
                    .map(|e| {
                        unmatched.extend(e.unmatched);
                        e.text
                    })
                    .map_err(|e| e.message)
            };
            let mount =
                match drydock_dockerfile::flags::parse_mount(&m.raw.text, ssh_index, &mut expand) {
                    Ok(m) => m,
                    Err(e) => {
                        self.diags.push(
                            Diagnostic::error(format!("invalid --mount: {e}"), m.raw.span)
                                .with_code("invalid-mount"),
                        );
                        return;
                    }
                };
            {
                for name in unmatched {
                    let common = COMMON_IMAGE_ENV
                        .iter()
                        .any(|c| *c == name || (c.ends_with('_') && name.starts_with(c)));
                    if !st.args.iter().any(|(k, _)| *k == name) && (st.env_known || !common) {
                        self.diags.push(UNDEFINED_VAR.diagnostic(
                            format!("Usage of undefined variable '${name}'"),
                            m.raw.span,
                        ));
                    }
                }
            }
            let from_root = |this: &mut Self, from: Option<&str>| -> Option<Option<OpId>> {
                match from {
                    None => {
                        let id = this.b.add(Op::Local(LocalSource {
                            name: "context".into(),
                            follow_paths: Vec::new(),
                            exclude_patterns: this.opts.dockerignore.lines(),
                        }));
                        Some(Some(id))
                    }
                    Some(f) => match resolve_from(f, si, &this.names, m.raw.span) {
                        Ok(Source::Stage(i)) if i == si => {
                            this.diags.push(
                                Diagnostic::error("a stage cannot mount itself", m.raw.span)
                                    .with_code("stage-cycle"),
                            );
                            None
                        }
                        Ok(src) => {
                            let p = st.platform.clone();
                            this.source_root(&src, &p, m.raw.span).map(Some)
                        }
                        Err(d) => {
                            this.diags.push(d);
                            None
                        }
                    },
                }
            };
            let em = match mount {
                Mount::Bind {
                    target,
                    from,
                    source,
                    readwrite,
                } => {
                    let Some(input) = from_root(self, from.as_deref()) else {
                        return;
                    };
                    ExecMount {
                        target: Some(abs_path(&st.config.config.working_dir, &target)),
                        kind: MountKind::Bind {
                            input,
                            selector: clean_path(&format!("/{source}")),
                            readonly: !readwrite,
                        },
                    }
                }
                Mount::Cache {
                    target,
                    id,
                    from,
                    source,
                    sharing,
                    readonly,
                    mode,
                    uid,
                    gid,
                } => {
                    let base = match &from {
                        None => None,
                        Some(f) => {
                            let Some(b) = from_root(self, Some(f)) else {
                                return;
                            };
                            b
                        }
                    };
                    ExecMount {
                        target: Some(abs_path(&st.config.config.working_dir, &target)),
                        kind: MountKind::Cache {
                            id,
                            sharing: match sharing {
                                Sharing::Shared => CacheSharing::Shared,
                                Sharing::Private => CacheSharing::Private,
                                Sharing::Locked => CacheSharing::Locked,
                            },
                            base,
                            selector: clean_path(&format!("/{source}")),
                            readonly,
                            mode,
                            uid,
                            gid,
                        },
                    }
                }
                Mount::Tmpfs { target, size } => ExecMount {
                    target: Some(abs_path(&st.config.config.working_dir, &target)),
                    kind: MountKind::Tmpfs { size },
                },
                Mount::Secret {
                    id,
                    target,
                    env,
                    required,
                    mode,
                    uid,
                    gid,
                } => ExecMount {
                    target: target.map(|t| abs_path(&st.config.config.working_dir, &t)),
                    kind: MountKind::Secret {
                        id,
                        env,
                        required,
                        mode,
                        uid,
                        gid,
                    },
                },
                Mount::Ssh {
                    id,
                    target,
                    required,
                    mode,
                    uid,
                    gid,
                } => {
                    ssh_index += 1;
                    ExecMount {
                        target: Some(abs_path(&st.config.config.working_dir, &target)),
                        kind: MountKind::Ssh {
                            id,
                            required,
                            mode,
                            uid,
                            gid,
                        },
                    }
                }
            };
            mounts.push(em);
        }
        let mut proxy_env = std::collections::BTreeMap::new();
        for k in PROXY_ARGS {
            if let Some(v) = self.opts.build_args.get(k)
                && !st.args.iter().any(|(a, _)| a == k)
            {
                proxy_env.insert(k.to_string(), v.clone());
                self.used_args.insert(k.to_string());
            }
        }
        let env: Vec<String> = st.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let op = Op::Exec(ExecOp {
            root: st.root.clone(),
            args: args.clone(),
            env,
            cwd: if st.config.config.working_dir.is_empty() {
                "/".into()
            } else {
                st.config.config.working_dir.clone()
            },
            user: st.config.config.user.clone(),
            network: match r.network.map(|n| n.0) {
                None | Some(NetworkMode::Default) => Network::Sandbox,
                Some(NetworkMode::None) => Network::None,
                Some(NetworkMode::Host) => Network::Host,
            },
            security: match r.security.map(|s| s.0) {
                Some(SecurityMode::Insecure) => Security::Insecure,
                _ => Security::Sandbox,
            },
            mounts,
            proxy_env,
        });
        let id = self.b.add(op);
        self.b.locate(&id, location);
        st.root = id;
        // History: `RUN |N K=V ... args`, with the stage's ARG values.
        let mut arg_env: Vec<String> = Vec::new();
        for (k, v) in &st.args {
            if let Some(v) = v {
                arg_env.retain(|e| !e.starts_with(&format!("{k}=")));
                arg_env.push(format!("{k}={v}"));
            }
        }
        let mut created = String::from("RUN ");
        if !arg_env.is_empty() {
            created.push_str(&format!("|{} {} ", arg_env.len(), arg_env.join(" ")));
        }
        created.push_str(&args.join(" "));
        self.commit(st, created, true);
    }

    fn copy(
        &mut self,
        st: &mut St,
        ins: &Instruction,
        c: &Copy,
        is_add: bool,
        si: usize,
        location: Location,
    ) {
        let cmd = if is_add { "ADD" } else { "COPY" };
        // Where sources come from.
        let from_src = match &c.from {
            None => None,
            Some(f) => match resolve_from(&f.text, si, &self.names, f.span) {
                Ok(Source::Stage(i)) if i == si => return,
                Ok(s) => {
                    let p = st.platform.clone();
                    match self.source_root(&s, &p, f.span) {
                        Some(id) => Some(id),
                        None => return,
                    }
                }
                Err(_) => return, // reported in phase one
            },
        };
        let Some(dest_raw) = self.expand(st, &c.dest.text, c.dest.span) else {
            return;
        };
        let owner = match &c.chown {
            Some(w) => match self.expand(st, &w.text, w.span) {
                Some(v) if !v.is_empty() => Some(Owner::parse(&v)),
                Some(_) => None,
                None => return,
            },
            None => None,
        };
        let mode = match &c.chmod {
            Some(w) => match self.expand(st, &w.text, w.span) {
                Some(v) if !v.is_empty() => Some(v),
                Some(_) => None,
                None => return,
            },
            None => None,
        };
        let mut excludes = Vec::new();
        for w in &c.exclude {
            let Some(v) = self.expand(st, &w.text, w.span) else {
                return;
            };
            excludes.push(v);
        }
        let checksum = match &c.checksum {
            Some(w) => match self.expand(st, &w.text, w.span) {
                Some(v) => Some((v, w.span)),
                None => return,
            },
            None => None,
        };
        let wd = st.config.config.working_dir.clone();
        let mut dest = abs_path(&wd, &dest_raw);
        if (dest_raw.ends_with('/')
            || dest_raw == "."
            || dest_raw.is_empty()
            || dest_raw.ends_with("/."))
            && !dest.ends_with('/')
        {
            dest.push('/');
        }
        let many =
            c.sources.len() > 1 || c.sources.iter().any(|w| w.text.contains(['*', '?', '[']));
        if many && !dest.ends_with('/') {
            self.diags.push(
                Diagnostic::warning(
                    format!("{cmd} with more than one source needs a directory destination ending in /"),
                    c.dest.span,
                )
                .with_code("copy-dest-not-directory")
                .with_label(format!("{dest_raw:?} does not end with /"))
                .with_hint(format!("write `{dest_raw}/`; otherwise the build fails when a second file is copied onto the first")),
            );
        }
        let mut actions = Vec::new();
        let mut context_paths = Vec::new();
        let mut srcs_text = Vec::new();
        for w in &c.sources {
            // Heredoc sources (`COPY <<EOF /dst`).
            if let Some(name) = w.text.strip_prefix("<<")
                && let Some(doc) = ins.heredocs.iter().find(|d| {
                    let n = name
                        .trim_start_matches('-')
                        .trim_matches(|ch| ch == '"' || ch == '\'');
                    d.name == n
                })
            {
                let mut data = doc.body();
                if doc.expand {
                    let mut lx = Lexer::new('\\');
                    lx.skip_process_quotes = true;
                    match lx.expand(&data, &st.env) {
                        Ok(e) => data = e.text,
                        Err(e) => {
                            self.diags.push(
                                Diagnostic::error(e.message, doc.content_span).with_code("expansion-error").with_hint(
                                    "quote the delimiter (<<'EOF') to copy the text without expanding variables",
                                ),
                            );
                            return;
                        }
                    }
                }
                let file = self.b.add(Op::File(FileOp {
                    base: None,
                    actions: vec![FileAction::Mkfile {
                        path: format!("/{}", doc.name),
                        data,
                        mode: 0o644,
                        owner: None,
                    }],
                }));
                actions.push(copy_action(
                    file,
                    format!("/{}", doc.name),
                    dest.clone(),
                    &owner,
                    &mode,
                    false,
                    false,
                    &excludes,
                ));
                srcs_text.push(w.text.clone());
                continue;
            }
            let Some(src) = self.expand(st, &w.text, w.span) else {
                return;
            };
            srcs_text.push(src.clone());
            if from_src.is_none() && is_add && is_git(&src) {
                let (remote, frag) = match src.split_once('#') {
                    Some((r, f)) => (r.to_string(), Some(f.to_string())),
                    None => (src.clone(), None),
                };
                let (reference, subdir) = match frag {
                    Some(f) => match f.split_once(':') {
                        Some((r, s)) => (
                            Some(r.to_string()).filter(|r| !r.is_empty()),
                            Some(s.to_string()),
                        ),
                        None => (Some(f), None),
                    },
                    None => (None, None),
                };
                let id = self.b.add(Op::Git(GitSource {
                    remote,
                    reference,
                    subdir,
                    keep_git_dir: c.keep_git_dir,
                    checksum: checksum.as_ref().map(|(v, _)| v.clone()),
                }));
                actions.push(copy_action(
                    id,
                    "/".into(),
                    dest.clone(),
                    &owner,
                    &mode,
                    false,
                    false,
                    &excludes,
                ));
                continue;
            }
            if from_src.is_none() && is_add && is_url(&src) {
                let digest = match &checksum {
                    None => None,
                    Some((v, span)) => match Digest::parse(v) {
                        Ok(d) => Some(d),
                        Err(e) => {
                            self.diags.push(
                                Diagnostic::error(format!("invalid --checksum: {e}"), *span)
                                    .with_code("invalid-flag")
                                    .with_hint("use --checksum=sha256:<64 hex digits>"),
                            );
                            return;
                        }
                    },
                };
                let filename = src
                    .split(['?', '#'])
                    .next()
                    .unwrap_or("")
                    .rsplit('/')
                    .find(|s| !s.is_empty() && !s.contains(':'))
                    .unwrap_or("__unnamed__")
                    .to_string();
                let id = self.b.add(Op::Http(HttpSource {
                    url: src.clone(),
                    checksum: digest,
                    filename: filename.clone(),
                }));
                actions.push(copy_action(
                    id,
                    format!("/{filename}"),
                    dest.clone(),
                    &owner,
                    &mode,
                    false,
                    false,
                    &excludes,
                ));
                continue;
            }
            if checksum.is_some() && from_src.is_none() {
                if let Some((_, span)) = &checksum {
                    self.diags.push(
                        Diagnostic::error(
                            "checksum can't be specified for non-HTTP(S) sources",
                            *span,
                        )
                        .with_code("invalid-flag")
                        .with_hint("--checksum verifies ADD <url> downloads only"),
                    );
                }
                return;
            }
            let cleaned = clean_path(&format!("/{src}"));
            let rel = cleaned.trim_start_matches('/').to_string();
            if from_src.is_none() {
                if rel.starts_with("..") || src.starts_with("../") {
                    self.diags.push(
                        Diagnostic::error(
                            format!("{cmd} source {src:?} is outside the build context"),
                            w.span,
                        )
                        .with_code("source-outside-context")
                        .with_hint("paths are relative to the context root; `..` cannot leave it"),
                    );
                }
                self.check_ignored(cmd, &rel, w.span);
                context_paths.push(if rel.is_empty() {
                    ".".to_string()
                } else {
                    rel.clone()
                });
            }
            // `COPY --parents a/./b/c`: the pivot says which parents to keep; the builder
            // needs it, so it survives cleaning (each side cleaned on its own).
            let action_src = match pivot_split(&src) {
                Some((above, below)) if c.parents => format!(
                    "{}/.{}",
                    clean_path(&format!("/{above}")).trim_end_matches('/'),
                    clean_path(&format!("/{below}"))
                ),
                _ => cleaned,
            };
            let placeholder = Digest::sha256(b"context-placeholder");
            actions.push(copy_action(
                from_src.clone().unwrap_or(placeholder),
                action_src,
                dest.clone(),
                &owner,
                &mode,
                is_add && from_src.is_none(),
                c.parents,
                &excludes,
            ));
        }
        if from_src.is_none() && !context_paths.is_empty() {
            let mut paths = context_paths.clone();
            paths.sort();
            paths.dedup();
            let local = self.b.add(Op::Local(LocalSource {
                name: "context".into(),
                follow_paths: if paths.iter().any(|p| p == ".") {
                    Vec::new()
                } else {
                    paths
                },
                exclude_patterns: self.opts.dockerignore.lines(),
            }));
            let placeholder = Digest::sha256(b"context-placeholder");
            for a in &mut actions {
                if let FileAction::Copy(ca) = a
                    && ca.source == placeholder
                {
                    ca.source = local.clone();
                }
            }
            self.b.locate(&local, location.clone());
        }
        let id = if c.link {
            let layer = self.b.add(Op::File(FileOp {
                base: None,
                actions,
            }));
            self.b.locate(&layer, location.clone());
            self.b.add(Op::Merge(MergeOp {
                inputs: vec![st.root.clone(), layer],
            }))
        } else {
            self.b.add(Op::File(FileOp {
                base: Some(st.root.clone()),
                actions,
            }))
        };
        self.b.locate(&id, location);
        st.root = id;
        self.commit(
            st,
            format!("{cmd} {} {dest_raw}", srcs_text.join(" ")),
            true,
        );
    }

    fn check_ignored(&mut self, cmd: &str, rel: &str, span: Span) {
        let ig = &self.opts.dockerignore;
        if ig.is_empty() || rel.is_empty() {
            return;
        }
        let verb = if cmd == "ADD" { "Add" } else { "Copy" };
        let mut hit = ig.is_excluded(rel);
        if !hit
            && rel.contains(['*', '?', '['])
            && let Some(files) = &self.opts.context_files
        {
            let pat = drydock_dockerfile::Dockerignore::from_patterns(&[rel]);
            let matched: Vec<&String> = files.iter().filter(|f| pat.is_excluded(f)).collect();
            hit = !matched.is_empty() && matched.iter().all(|f| ig.is_excluded(f));
        }
        if hit {
            let mut d = COPY_IGNORED_FILE.diagnostic(
                format!("Attempting to {verb} file {rel:?} that is excluded by .dockerignore"),
                span,
            );
            if let Some(p) = ig.matching(rel).filter(|p| !p.exclusion) {
                d = d.with_hint(format!(
                    ".dockerignore line {} ({:?}) excludes it",
                    p.line, p.text
                ));
            }
            self.diags.push(d);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn copy_action(
    source: OpId,
    src: String,
    dest: String,
    owner: &Option<Owner>,
    mode: &Option<String>,
    unpack: bool,
    parents: bool,
    excludes: &[String],
) -> FileAction {
    FileAction::Copy(CopyAction {
        source,
        src,
        dest,
        owner: owner.clone(),
        mode: mode.clone(),
        follow_symlinks: true,
        dir_contents_only: true,
        allow_wildcard: true,
        allow_empty_wildcard: true,
        create_dest_path: true,
        attempt_unpack: unpack,
        parents,
        exclude_patterns: excludes.to_vec(),
    })
}

/// ONBUILD triggers come from the base image, not this file: point all their spans at FROM.
fn rebase_spans(mut ins: Instruction, at: Span) -> Instruction {
    fn fix_word(w: &mut drydock_dockerfile::Word, at: Span) {
        w.span = at;
    }
    fix_word(&mut ins.keyword_word, at);
    fix_word(&mut ins.args, at);
    for f in &mut ins.flags {
        f.span = at;
    }
    match &mut ins.command {
        Command::Env(kvs) | Command::Label(kvs) => {
            for kv in kvs {
                fix_word(&mut kv.key, at);
                fix_word(&mut kv.value, at);
            }
        }
        Command::Arg(a) => {
            for d in a {
                fix_word(&mut d.name, at);
                if let Some(v) = &mut d.default {
                    fix_word(v, at);
                }
            }
        }
        Command::Copy(c) | Command::Add(c) => {
            for w in &mut c.sources {
                fix_word(w, at);
            }
            fix_word(&mut c.dest, at);
        }
        Command::User(w) | Command::Workdir(w) | Command::Stopsignal(w) => fix_word(w, at),
        Command::Expose(ws) | Command::Volume(ws) => {
            for w in ws {
                fix_word(w, at);
            }
        }
        _ => {}
    }
    ins
}

/// `80`, `80/udp`, `8000-8010/tcp` -> the `port/proto` keys of ExposedPorts.
fn parse_port(s: &str) -> Result<Vec<String>, String> {
    let (port, proto) = match s.split_once('/') {
        Some((p, pr)) => (p, pr.to_ascii_lowercase()),
        None => (s, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    // `ip:host:container` mappings: only the container port counts (ExposeInvalidFormat warns).
    let port = port.rsplit(':').next().unwrap_or(port);
    let num = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {p}"))
    };
    match port.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(format!("invalid range specified for containerPort: {port}"));
            }
            Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
        }
        None => Ok(vec![format!("{}/{proto}", num(port)?)]),
    }
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "UNUSED",
];

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if SIGNALS.contains(&name) {
        return true;
    }
    // RTMIN+n / RTMAX-n
    name.starts_with("RTMIN") || name.starts_with("RTMAX")
}

/// Splits a `COPY --parents` source at its first `/./` pivot (a leading `./` is no pivot).
fn pivot_split(src: &str) -> Option<(&str, &str)> {
    let mut start = 0;
    let b = src.as_bytes();
    loop {
        while b.get(start) == Some(&b'/') {
            start += 1;
        }
        if src[start..].starts_with("./") {
            start += 2;
        } else {
            break;
        }
    }
    let at = src[start..].find("/./")? + start;
    Some((&src[..at], &src[at + 3..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_port("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            parse_port("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(parse_port("80/xyz").is_err());
        assert!(parse_port("abc").is_err());
    }

    #[test]
    fn signals_and_paths() {
        assert!(valid_signal("SIGTERM") && valid_signal("quit") && valid_signal("9"));
        assert!(!valid_signal("SIGFOO") && !valid_signal("0"));
        assert_eq!(abs_path("/app", "src"), "/app/src");
        assert_eq!(abs_path("", "a/../b"), "/b");
        assert!(is_git("https://github.com/a/b.git#main") && is_git("git@github.com:a/b.git"));
        assert!(!is_git("https://example.com/a.tar.gz"));
    }
}
