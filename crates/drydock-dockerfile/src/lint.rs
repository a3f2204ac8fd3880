//! BuildKit's build checks: the rule list, the `# check=skip=...;error=true` configuration, and
//! the checks that need only the syntax tree. Checks that need variable scoping (UndefinedVar,
//! UndefinedArgInFrom, InvalidDefaultArgInFrom, CopyIgnoredFile) run in the frontend and build
//! their diagnostics with [`Rule::diagnostic`].

use std::collections::BTreeMap;

use drydock_diagnostics::{Diagnostic, Severity, Span};

use crate::ast::*;

/// One check, named as BuildKit names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub description: &'static str,
    /// How to fix it, shown as a hint.
    pub fix: &'static str,
}

impl Rule {
    /// The documentation page BuildKit links to.
    pub fn url(&self) -> String {
        let mut kebab = String::new();
        for (i, c) in self.name.char_indices() {
            let prev_upper = i > 0
                && self.name[..i]
                    .chars()
                    .last()
                    .is_some_and(|p| p.is_ascii_uppercase());
            let next_lower = self.name[i..]
                .chars()
                .nth(1)
                .is_some_and(|n| n.is_ascii_lowercase());
            if c.is_ascii_uppercase() && i > 0 && (!prev_upper || next_lower) {
                kebab.push('-');
            }
            kebab.push(c.to_ascii_lowercase());
        }
        format!("https://docs.docker.com/go/dockerfile/rule/{kebab}/")
    }

    /// A warning for this rule, with its fix and documentation link as hints.
    pub fn diagnostic(&self, message: impl Into<String>, span: Span) -> Diagnostic {
        let mut d = Diagnostic::warning(message, span).with_code(self.name);
        if !self.fix.is_empty() {
            d = d.with_hint(self.fix);
        }
        d.with_hint(format!("see {}", self.url()))
    }

    pub fn by_name(name: &str) -> Option<&'static Rule> {
        RULES.iter().find(|r| r.name.eq_ignore_ascii_case(name))
    }
}

macro_rules! rules {
    ($($id:ident = $name:literal, $desc:literal, $fix:literal;)*) => {
        $(pub const $id: Rule = Rule { name: $name, description: $desc, fix: $fix };)*
        /// Every check drydock implements.
        pub const RULES: &[Rule] = &[$($id),*];
    };
}

rules! {
    STAGE_NAME_CASING = "StageNameCasing", "Stage names should be lowercase", "";
    FROM_AS_CASING = "FromAsCasing", "The 'as' keyword should match the case of the 'from' keyword", "";
    NO_EMPTY_CONTINUATION = "NoEmptyContinuation", "Empty continuation lines will become errors in a future release", "remove the empty line or end it with the escape character";
    CONSISTENT_INSTRUCTION_CASING = "ConsistentInstructionCasing", "All commands within the Dockerfile should use the same casing (either upper or lower)", "";
    DUPLICATE_STAGE_NAME = "DuplicateStageName", "Stage names should be unique", "rename one of the stages";
    RESERVED_STAGE_NAME = "ReservedStageName", "Reserved words should not be used as stage names", "pick another name: `scratch` and `context` have special meanings";
    JSON_ARGS_RECOMMENDED = "JSONArgsRecommended", "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals", "";
    MAINTAINER_DEPRECATED = "MaintainerDeprecated", "The MAINTAINER instruction is deprecated, use a label instead to define an image author", "use LABEL org.opencontainers.image.authors=\"...\"";
    UNDEFINED_ARG_IN_FROM = "UndefinedArgInFrom", "FROM command must use declared ARGs", "declare the variable with ARG before the first FROM";
    WORKDIR_RELATIVE_PATH = "WorkdirRelativePath", "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes", "";
    UNDEFINED_VAR = "UndefinedVar", "Variables should be defined before their use", "declare it with ARG or ENV before this instruction";
    MULTIPLE_INSTRUCTIONS_DISALLOWED = "MultipleInstructionsDisallowed", "Multiple instructions of the same type should not be used in the same stage", "remove all but the last one";
    LEGACY_KEY_VALUE_FORMAT = "LegacyKeyValueFormat", "Legacy key/value format with whitespace separator should not be used", "";
    INVALID_DEFAULT_ARG_IN_FROM = "InvalidDefaultArgInFrom", "Default value for global ARG results in an empty or invalid base image name", "give the ARG a default that makes a valid image reference";
    SECRETS_USED_IN_ARG_OR_ENV = "SecretsUsedInArgOrEnv", "Sensitive data should not be used in the ARG or ENV commands", "use a secret mount instead: RUN --mount=type=secret,id=...";
    COPY_IGNORED_FILE = "CopyIgnoredFile", "Attempting to Copy file that is excluded by .dockerignore", "remove the path from .dockerignore or stop copying it";
    FROM_PLATFORM_FLAG_CONST_DISALLOWED = "FromPlatformFlagConstDisallowed", "FROM --platform flag should not use a constant value", "use a variable such as $BUILDPLATFORM, or drop the flag";
    REDUNDANT_TARGET_PLATFORM = "RedundantTargetPlatform", "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior", "remove the --platform flag";
    EXPOSE_PROTO_CASING = "ExposeProtoCasing", "Protocol in EXPOSE instruction should be lowercase", "write tcp, udp or sctp in lowercase";
    EXPOSE_INVALID_FORMAT = "ExposeInvalidFormat", "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release", "expose only the container port: EXPOSE 80/tcp";
}

/// The `# check=` directive / `BUILDKIT_DOCKERFILE_CHECK` build arg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    pub skip_all: bool,
    pub skip: Vec<String>,
    /// Checks that fail count as errors.
    pub error: bool,
    pub experimental: Vec<String>,
}

impl CheckConfig {
    /// Parses `skip=A,B;error=true;experimental=all`.
    pub fn parse(s: &str) -> Result<CheckConfig, String> {
        let mut c = CheckConfig::default();
        for part in s.split(';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("invalid check option {part:?}: expected key=value"));
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "skip" => {
                    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        if name.eq_ignore_ascii_case("all") {
                            c.skip_all = true;
                        } else {
                            c.skip.push(name.to_string());
                        }
                    }
                }
                "error" => {
                    c.error = match v.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(format!(
                                "invalid check error value {v:?}: expected true or false"
                            ));
                        }
                    }
                }
                "experimental" => c
                    .experimental
                    .extend(v.split(',').map(|s| s.trim().to_string())),
                _ => {
                    return Err(format!(
                        "invalid check option {k:?}: expected skip, error or experimental"
                    ));
                }
            }
        }
        Ok(c)
    }

    /// The configuration of a Dockerfile: the `# check=` directive, overridden by the
    /// `BUILDKIT_DOCKERFILE_CHECK` build arg when given. Invalid values become diagnostics.
    pub fn for_dockerfile(
        df: &Dockerfile,
        build_arg: Option<&str>,
    ) -> (CheckConfig, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        if let Some(v) = build_arg {
            return match CheckConfig::parse(v) {
                Ok(c) => (c, diags),
                Err(e) => {
                    diags.push(
                        Diagnostic::error(
                            format!("BUILDKIT_DOCKERFILE_CHECK: {e}"),
                            Span::point(0),
                        )
                        .with_code("invalid-check-config"),
                    );
                    (CheckConfig::default(), diags)
                }
            };
        }
        let Some(w) = &df.directives.check else {
            return (CheckConfig::default(), diags);
        };
        match CheckConfig::parse(&w.text) {
            Ok(c) => {
                for name in &c.skip {
                    if Rule::by_name(name).is_none() {
                        let mut d = Diagnostic::warning(
                            format!("unknown check {name:?} in check directive"),
                            w.span,
                        )
                        .with_code("invalid-check-config");
                        if let Some(s) = crate::suggest::closest(name, RULES.iter().map(|r| r.name))
                        {
                            d = d.with_hint(format!("did you mean {s}?"));
                        }
                        diags.push(d);
                    }
                }
                (c, diags)
            }
            Err(e) => {
                diags.push(
                    Diagnostic::error(e, w.span)
                        .with_code("invalid-check-config")
                        .with_hint(
                            "example: # check=skip=JSONArgsRecommended,StageNameCasing;error=true",
                        ),
                );
                (CheckConfig::default(), diags)
            }
        }
    }

    pub fn is_skipped(&self, rule: &str) -> bool {
        self.skip_all || self.skip.iter().any(|s| s.eq_ignore_ascii_case(rule))
    }

    /// Drops skipped checks and, with `error=true`, turns check warnings into errors. Diagnostics
    /// whose code is not a check name pass through unchanged.
    pub fn apply(&self, diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
        diags
            .into_iter()
            .filter_map(|mut d| {
                let rule = d.code.as_deref().and_then(Rule::by_name);
                match rule {
                    Some(r) if self.is_skipped(r.name) => None,
                    Some(_) if self.error && d.severity == Severity::Warning => {
                        d.severity = Severity::Error;
                        Some(d)
                    }
                    _ => Some(d),
                }
            })
            .collect()
    }
}

fn self_consistent(s: &str) -> bool {
    s == s.to_lowercase() || s == s.to_uppercase()
}

/// Names whose parts suggest a secret (BuildKit's `SecretsUsedInArgOrEnv` heuristic).
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let parts: Vec<&str> = upper.split('_').collect();
    for (i, p) in parts.iter().enumerate() {
        match *p {
            "APIKEY" | "AUTH" | "CREDENTIAL" | "CREDENTIALS" | "PASS" | "PASSWORD" | "SECRET"
            | "TOKEN" => {
                return true;
            }
            "API" if parts.get(i + 1) == Some(&"KEY") => return true,
            _ => {}
        }
    }
    false
}

/// Runs the checks that need only the syntax tree. Skipping and `error=true` are applied by
/// [`CheckConfig::apply`], not here.
pub fn check(df: &Dockerfile) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // Casing of instruction keywords (FROM included): the majority decides, ties go upper.
    let (mut lower, mut upper) = (0, 0);
    let all: Vec<&Instruction> = df.instructions.iter().collect();
    for i in &all {
        let k = &i.keyword_word.text;
        if self_consistent(k) {
            if *k == k.to_lowercase() {
                lower += 1;
            } else {
                upper += 1;
            }
        }
    }
    let majority_lower = lower > upper;
    for i in &all {
        let k = &i.keyword_word.text;
        let want = if majority_lower && *k != k.to_lowercase() {
            Some("lowercase")
        } else if !majority_lower && *k != k.to_uppercase() {
            Some("uppercase")
        } else {
            None
        };
        if let Some(want) = want {
            let fixed = if want == "lowercase" {
                k.to_lowercase()
            } else {
                k.to_uppercase()
            };
            out.push(first_hint(
                CONSISTENT_INSTRUCTION_CASING.diagnostic(
                    format!("Command '{k}' should match the case of the command majority ({want})"),
                    i.keyword_word.span,
                ),
                format!("write `{fixed}`"),
            ));
        }
    }

    let mut stage_names: BTreeMap<String, Span> = BTreeMap::new();
    let mut stage: Vec<&Instruction> = Vec::new();
    let mut stages: Vec<Vec<&Instruction>> = Vec::new();
    for i in &df.instructions {
        if let Command::From(f) = &i.command {
            stages.push(std::mem::take(&mut stage));
            if let (Some(name), Some(as_kw)) = (&f.name, &f.as_keyword) {
                if name.text != name.text.to_lowercase() {
                    out.push(first_hint(
                        STAGE_NAME_CASING.diagnostic(
                            format!("Stage name '{}' should be lowercase", name.text),
                            name.span,
                        ),
                        format!(
                            "write `AS {}` (stage names are matched case-insensitively anyway)",
                            name.text.to_lowercase()
                        ),
                    ));
                }
                let from_kw = &i.keyword_word.text;
                let from_upper = *from_kw == from_kw.to_uppercase();
                let as_upper = as_kw.text == as_kw.text.to_uppercase();
                let as_lower = as_kw.text == as_kw.text.to_lowercase();
                if (from_upper && !as_upper)
                    || (!from_upper && *from_kw == from_kw.to_lowercase() && !as_lower)
                {
                    let fixed = if from_upper { "AS" } else { "as" };
                    out.push(first_hint(
                        FROM_AS_CASING.diagnostic(
                            format!(
                                "'{}' and '{}' keywords' casing do not match",
                                as_kw.text, from_kw
                            ),
                            as_kw.span,
                        ),
                        format!("write `{from_kw} ... {fixed} {}`", name.text),
                    ));
                }
                let lower = name.text.to_lowercase();
                if lower == "scratch" || lower == "context" {
                    out.push(RESERVED_STAGE_NAME.diagnostic(
                        format!(
                            "Stage name should not use the same name as reserved stage {lower:?}"
                        ),
                        name.span,
                    ));
                }
                if let Some(first) = stage_names.get(&lower) {
                    out.push(
                        DUPLICATE_STAGE_NAME
                            .diagnostic(
                                format!(
                                    "Duplicate stage name {lower:?}, stage names should be unique"
                                ),
                                name.span,
                            )
                            .with_secondary(*first, "first defined here"),
                    );
                } else {
                    stage_names.insert(lower, name.span);
                }
            }
            if let Some(p) = &f.platform {
                if p.text == "$TARGETPLATFORM" || p.text == "${TARGETPLATFORM}" {
                    out.push(REDUNDANT_TARGET_PLATFORM.diagnostic(
                        format!("Setting platform to predefined {} in FROM is redundant as this is the default behavior", p.text),
                        p.span,
                    ));
                } else if !p.text.contains('$') {
                    let arch = p.text.split('/').nth(1).unwrap_or("").to_lowercase();
                    let named_for_it = f
                        .name
                        .as_ref()
                        .is_some_and(|n| !arch.is_empty() && n.text.to_lowercase().contains(&arch));
                    if !named_for_it {
                        out.push(FROM_PLATFORM_FLAG_CONST_DISALLOWED.diagnostic(
                            format!(
                                "FROM --platform flag should not use constant value {:?}",
                                p.text
                            ),
                            p.span,
                        ));
                    }
                }
            }
        }
        stage.push(i);
    }
    stages.push(stage);

    // Stages whose image has an explicit SHELL (set in the stage or in a stage it is built
    // FROM): BuildKit does not recommend JSON arguments there, the shell was chosen on purpose.
    let mut shell_set: Vec<(Option<String>, bool)> = Vec::new();
    for stage in &stages {
        let mut seen_workdir = false;
        let (name, base) = match stage.first().map(|i| &i.command) {
            Some(Command::From(f)) => (
                f.name.as_ref().map(|n| n.text.to_lowercase()),
                Some(f.image.text.to_lowercase()),
            ),
            _ => (None, None),
        };
        let mut has_shell = base.is_some_and(|b| {
            shell_set
                .iter()
                .rev()
                .any(|(n, set)| *set && n.as_deref() == Some(b.as_str()))
        });
        for (idx, i) in stage.iter().enumerate() {
            if matches!(i.command, Command::Shell(_)) {
                has_shell = true;
            }
            match &i.command {
                Command::Maintainer(_) => out.push(MAINTAINER_DEPRECATED.diagnostic(
                    "Maintainer instruction is deprecated in favor of using label",
                    i.keyword_word.span,
                )),
                Command::Cmd(c) | Command::Entrypoint(c) if !c.is_exec() && !has_shell => {
                    out.push(first_hint(
                        JSON_ARGS_RECOMMENDED.diagnostic(
                            format!(
                                "JSON arguments recommended for {} to prevent unintended behavior related to OS signals",
                                i.keyword
                            ),
                            i.args.span,
                        ),
                        exec_form_hint(i.keyword, &i.args.text),
                    ))
                }
                Command::Workdir(w) => {
                    let abs = w.text.starts_with('/') || w.text.starts_with('$');
                    if !abs && !seen_workdir {
                        out.push(first_hint(
                            WORKDIR_RELATIVE_PATH.diagnostic(
                                format!("Relative workdir {:?} can have unexpected results if the base image changes", w.text),
                                w.span,
                            ),
                            format!("it resolves against the base image's WORKDIR; write `WORKDIR /{}` if that is what you mean", w.text.trim_start_matches("./")),
                        ));
                    }
                    seen_workdir = true;
                }
                Command::Env(kvs) | Command::Label(kvs) => {
                    for kv in kvs {
                        if kv.legacy {
                            let kw = i.keyword.as_str();
                            out.push(
                                LEGACY_KEY_VALUE_FORMAT
                                    .diagnostic(
                                        format!("\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"),
                                        i.args.span,
                                    )
                                    .with_hint(format!("write: {kw} {}={}", kv.key.text, quote_if_needed(&kv.value.text))),
                            );
                        }
                        if i.keyword == Keyword::Env && looks_secret(&kv.key.text) {
                            out.push(SECRETS_USED_IN_ARG_OR_ENV.diagnostic(
                                format!("Do not use ARG or ENV instructions for sensitive data (ENV {:?})", kv.key.text),
                                kv.key.span,
                            ));
                        }
                    }
                }
                Command::Arg(args) => {
                    for a in args {
                        if looks_secret(&a.name.text) {
                            out.push(SECRETS_USED_IN_ARG_OR_ENV.diagnostic(
                                format!("Do not use ARG or ENV instructions for sensitive data (ARG {:?})", a.name.text),
                                a.name.span,
                            ));
                        }
                    }
                }
                Command::Expose(ports) => {
                    for p in ports {
                        if let Some((_, proto)) = p.text.split_once('/')
                            && proto != proto.to_lowercase()
                        {
                            out.push(EXPOSE_PROTO_CASING.diagnostic(
                                format!("Defined protocol '{}' in EXPOSE instruction should be lowercase", p.text),
                                p.span,
                            ));
                        }
                        let port_part = p.text.split('/').next().unwrap_or("");
                        if port_part.contains(':') {
                            out.push(EXPOSE_INVALID_FORMAT.diagnostic(
                                format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{}'", p.text),
                                p.span,
                            ));
                        }
                    }
                }
                _ => {}
            }
            for kw in [Keyword::Cmd, Keyword::Entrypoint, Keyword::Healthcheck] {
                if i.keyword == kw && stage[idx + 1..].iter().any(|later| later.keyword == kw) {
                    out.push(MULTIPLE_INSTRUCTIONS_DISALLOWED.diagnostic(
                        format!(
                            "Multiple {kw} instructions should not be used in the same stage because only the last one will be used"
                        ),
                        i.keyword_word.span,
                    ));
                }
            }
        }
        shell_set.push((name, has_shell));
    }
    // Text that looks like exec form but is not JSON silently becomes a shell command.
    for i in &df.instructions {
        let shell_text = match &i.command {
            Command::Run(r) => match &r.command {
                CommandLine::Shell(w) => Some(w),
                CommandLine::Exec(_) => None,
            },
            Command::Cmd(CommandLine::Shell(w)) | Command::Entrypoint(CommandLine::Shell(w)) => {
                Some(w)
            }
            Command::Healthcheck(crate::ast::Healthcheck::Cmd {
                command: CommandLine::Shell(w),
                ..
            }) => Some(w),
            _ => None,
        };
        if let Some(w) = shell_text {
            let t = w.text.trim();
            if t.starts_with('[') && t.ends_with(']') {
                let hint = if t.contains('\'') {
                    "JSON strings need double quotes: [\"executable\", \"arg\"]".to_string()
                } else {
                    "check the quotes and commas: [\"executable\", \"arg\"]".to_string()
                };
                out.push(
                    Diagnostic::warning(
                        format!("{} arguments look like exec form but are not valid JSON, so they run as a shell command", i.keyword),
                        w.span,
                    )
                    .with_code("invalid-json-args")
                    .with_label("this text is passed to /bin/sh -c as it is")
                    .with_hint(hint),
                );
            }
        }
    }
    if let Some(w) = &df.directives.syntax {
        let image = w.text.split(['@', ':']).next().unwrap_or("");
        let official = [
            "docker/dockerfile",
            "docker.io/docker/dockerfile",
            "docker.io/docker/dockerfile-upstream",
        ];
        if !official.contains(&image) {
            out.push(
                Diagnostic::warning(format!("syntax directive {:?} is not used", w.text), w.span)
                    .with_code("syntax-ignored")
                    .with_label("drydock reads Dockerfiles with its built-in frontend")
                    .with_hint("custom frontends are not run; the file is read as the current Dockerfile syntax"),
            );
        }
    }
    out.sort_by_key(|d| d.span.start);
    out
}

/// Puts a concrete fix before the rule's generic hints.
fn first_hint(mut d: Diagnostic, hint: String) -> Diagnostic {
    d.hints.insert(0, hint);
    d
}

/// The exec form of a simple shell-form command, or how to keep the shell and still get signals.
fn exec_form_hint(kw: Keyword, cmd: &str) -> String {
    let t = cmd.trim();
    if t.starts_with('[') && t.ends_with(']') {
        return format!("write it as JSON: `{kw} {}`", t.replace('\'', "\""));
    }
    let simple = !cmd.is_empty()
        && !cmd
            .chars()
            .any(|c| "|&;<>()$`\\\"'*?[]#~={}%!".contains(c) || c == '\n');
    if simple {
        let words: Vec<String> = cmd.split_whitespace().map(|w| format!("{w:?}")).collect();
        format!("write `{kw} [{}]`", words.join(", "))
    } else {
        format!(
            "this command needs a shell: write `{kw} [\"/bin/sh\", \"-c\", \"exec ...\"]` or start it with `exec` so the program replaces the shell"
        )
    }
}

fn quote_if_needed(v: &str) -> String {
    if v.contains(char::is_whitespace) && !v.starts_with('"') && !v.starts_with('\'') {
        format!("\"{}\"", v.replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_urls_are_kebab_case() {
        assert_eq!(
            JSON_ARGS_RECOMMENDED.url(),
            "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
        );
        assert_eq!(
            FROM_AS_CASING.url(),
            "https://docs.docker.com/go/dockerfile/rule/from-as-casing/"
        );
    }

    #[test]
    fn check_config() {
        let c = CheckConfig::parse("skip=JSONArgsRecommended, StageNameCasing;error=true").unwrap();
        assert!(c.error && c.is_skipped("jsonargsrecommended") && !c.is_skipped("UndefinedVar"));
        assert!(CheckConfig::parse("skip=all").unwrap().skip_all);
        assert!(CheckConfig::parse("nope=1").is_err());
    }

    #[test]
    fn secrets_heuristic() {
        for s in [
            "API_KEY",
            "GITHUB_TOKEN",
            "DB_PASSWORD",
            "aws_secret_access_key",
            "APIKEY",
            "PASS",
        ] {
            assert!(looks_secret(s), "{s}");
        }
        for s in [
            "PASSENGER",
            "TOKENIZER_VERSION",
            "GPG_KEY",
            "KEYBOARD",
            "AUTHOR",
        ] {
            assert!(!looks_secret(s), "{s}");
        }
    }
}
