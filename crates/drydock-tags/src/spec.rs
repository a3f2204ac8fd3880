//! The `tags` and `flavor` inputs, parsed and checked without an event.

use drydock_diagnostics::Span;
use drydock_diagnostics::suggest::{Case, closest};
use regex::Regex;

use crate::csv::{Field, split};
use crate::error::TagsError;
use crate::handlebars::{self, Part};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Schedule,
    Semver,
    Pep440,
    Match,
    Edge,
    Ref,
    Raw,
    Sha,
    /// drydock's addition: the output of `git describe --tags --always`, given by the caller.
    Describe,
}

impl TagKind {
    pub const ALL: [(&'static str, TagKind); 9] = [
        ("schedule", TagKind::Schedule),
        ("semver", TagKind::Semver),
        ("pep440", TagKind::Pep440),
        ("match", TagKind::Match),
        ("edge", TagKind::Edge),
        ("ref", TagKind::Ref),
        ("raw", TagKind::Raw),
        ("sha", TagKind::Sha),
        ("describe", TagKind::Describe),
    ];

    pub fn name(self) -> &'static str {
        TagKind::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("raw", |(n, _)| n)
    }

    /// metadata-action's default priorities (`describe`: 500, between `ref` and `raw`).
    pub fn default_priority(self) -> i64 {
        match self {
            TagKind::Schedule => 1000,
            TagKind::Semver | TagKind::Pep440 => 900,
            TagKind::Match => 800,
            TagKind::Edge => 700,
            TagKind::Ref => 600,
            TagKind::Describe => 500,
            TagKind::Raw => 200,
            TagKind::Sha => 100,
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            TagKind::Schedule => &["pattern"],
            TagKind::Semver | TagKind::Pep440 => &["pattern", "value"],
            TagKind::Match => &["pattern", "group", "value"],
            TagKind::Edge => &["branch"],
            TagKind::Ref => &["event"],
            TagKind::Raw => &["value"],
            TagKind::Sha => &["format"],
            TagKind::Describe => &[],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefEvent {
    Branch,
    Tag,
    Pr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShaFormat {
    #[default]
    Short,
    Long,
}

/// One line of the `tags` input.
#[derive(Debug, Clone)]
pub struct TagRule {
    pub kind: TagKind,
    /// `enable=` as written (after global expressions it must be `true` or `false`).
    pub enable: String,
    pub priority: i64,
    /// Set only when written: an explicit prefix (even empty) replaces the flavor's.
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub value: Option<String>,
    pub pattern: Option<String>,
    pub group: usize,
    pub event: Option<RefEvent>,
    pub branch: Option<String>,
    pub format: ShaFormat,
    /// The whole line.
    pub span: Span,
    pub(crate) regex: Option<Regex>,
    pub(crate) spans: Vec<(String, Span)>,
}

impl TagRule {
    fn new(kind: TagKind, span: Span) -> Self {
        TagRule {
            kind,
            enable: "true".into(),
            priority: kind.default_priority(),
            prefix: None,
            suffix: None,
            value: None,
            pattern: None,
            group: 0,
            event: None,
            branch: None,
            format: ShaFormat::Short,
            span,
            regex: None,
            spans: Vec::new(),
        }
    }

    /// The span of attribute `key`'s value, or of the line.
    pub fn span_of(&self, key: &str) -> Span {
        self.spans
            .iter()
            .find(|(k, _)| k == key)
            .map_or(self.span, |(_, s)| *s)
    }
}

/// The parsed `tags` input.
#[derive(Debug, Clone)]
pub struct TagsSpec {
    pub rules: Vec<TagRule>,
}

const COMMON_KEYS: [&str; 5] = ["type", "enable", "priority", "prefix", "suffix"];
const GLOBAL_EXPS: [&str; 7] = [
    "branch",
    "tag",
    "sha",
    "base_ref",
    "is_default_branch",
    "date",
    "commit_date",
];
const VERSION_EXPS: [&str; 5] = ["raw", "version", "major", "minor", "patch"];

impl TagsSpec {
    /// metadata-action's defaults for an empty input: schedule, ref (branch, tag, pr).
    pub fn default_rules() -> TagsSpec {
        let mk = |kind, event| {
            let mut r = TagRule::new(kind, Span::default());
            r.event = event;
            if event == Some(RefEvent::Pr) {
                r.prefix = None;
            }
            r
        };
        TagsSpec {
            rules: vec![
                mk(TagKind::Schedule, None),
                mk(TagKind::Ref, Some(RefEvent::Branch)),
                mk(TagKind::Ref, Some(RefEvent::Tag)),
                mk(TagKind::Ref, Some(RefEvent::Pr)),
            ],
        }
    }

    /// Parses the input (one entry a line, `#` comments); reports every error. An input with no
    /// entries gives the defaults.
    pub fn parse(text: &str) -> Result<TagsSpec, Vec<TagsError>> {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for (body, start) in entries(text) {
            match parse_rule(body, start) {
                Ok(r) => rules.push(r),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if rules.is_empty() {
            return Ok(TagsSpec::default_rules());
        }
        Ok(TagsSpec { rules })
    }
}

/// The entries of a `tags` or `flavor` input, one a line: each line trimmed, with the byte
/// offset where it starts in `text`; blank lines and `#` comments left out.
fn entries(text: &str) -> impl Iterator<Item = (&str, usize)> {
    let mut offset = 0;
    text.split_inclusive('\n').filter_map(move |raw_line| {
        let line_start = offset;
        offset += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let lead = line.len() - line.trim_start().len();
        let body = line.trim();
        (!body.is_empty() && !body.starts_with('#')).then_some((body, line_start + lead))
    })
}

fn did_you_mean(word: &str, candidates: &[&str]) -> Option<String> {
    closest(word, candidates.iter().copied(), Case::Sensitive, |d, c| {
        d <= (c.len() / 3).max(1)
    })
    .map(|c| format!("did you mean `{c}`?"))
}

/// Splits `key=value` (key trimmed and lower-cased); the value span excludes the key.
fn key_value(f: &Field) -> Option<(String, String, Span)> {
    let (k, v) = f.text.split_once('=')?;
    let vstart = f.span.start + k.len() + 1;
    // quoted fields' spans include the quote; good enough for a caret
    Some((
        k.trim().to_ascii_lowercase(),
        v.trim().to_string(),
        Span::new(vstart.min(f.span.end), f.span.end),
    ))
}

fn check_template(text: &str, span: Span, allowed: &[&str], errors: &mut Vec<TagsError>) {
    match handlebars::parse(text, 0) {
        Ok(parts) => {
            for p in parts {
                if let Part::Var(v) = p {
                    if !allowed.contains(&v.name.as_str()) {
                        let mut e = TagsError::new(
                            format!("unknown expression `{{{{{}}}}}`", v.name),
                            span,
                        );
                        if let Some(h) = did_you_mean(&v.name, allowed) {
                            e = e.hint(h);
                        }
                        e = e.hint(format!("available here: {}", allowed.join(", ")));
                        errors.push(e);
                    } else if (v.name == "date" || v.name == "commit_date") && v.args.len() != 1 {
                        errors.push(
                            TagsError::new(
                                format!("`{{{{{} …}}}}` takes one quoted format", v.name),
                                span,
                            )
                            .hint("for example {{date 'YYYYMMDD' tz='Asia/Tokyo'}}"),
                        );
                    } else if let Some(tz) = v.kwarg("tz")
                        && let Err(m) = crate::time::TimeZone::parse(tz)
                    {
                        errors.push(TagsError::new(m, span));
                    }
                }
            }
        }
        Err(e) => errors.push(TagsError::new(e.message, span)),
    }
}

fn parse_rule(body: &str, offset: usize) -> Result<TagRule, Vec<TagsError>> {
    let line_span = Span::new(offset, offset + body.len());
    let fields = split(body, offset).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    // The type first (default raw).
    let mut kind = TagKind::Raw;
    for f in &fields {
        if let Some((k, v, span)) = key_value(f)
            && k == "type"
        {
            match TagKind::ALL
                .iter()
                .find(|(n, _)| *n == v.to_ascii_lowercase())
            {
                Some((_, t)) => kind = *t,
                None => {
                    let names: Vec<&str> = TagKind::ALL.iter().map(|(n, _)| *n).collect();
                    let mut e = TagsError::new(format!("unknown tag type `{v}`"), span);
                    if let Some(h) = did_you_mean(&v, &names) {
                        e = e.hint(h);
                    }
                    e = e.hint(format!("types: {}", names.join(", ")));
                    return Err(vec![e]);
                }
            }
        }
    }
    let mut rule = TagRule::new(kind, line_span);
    let globals: Vec<&str> = GLOBAL_EXPS.to_vec();
    for f in &fields {
        let Some((key, value, vspan)) = key_value(f) else {
            // A field without `=` is the value of a raw tag (`type=raw,foo` or just `foo`).
            if kind == TagKind::Raw && rule.value.is_none() && !f.text.trim().is_empty() {
                check_template(f.text.trim(), f.span, &globals, &mut errors);
                rule.value = Some(f.text.trim().to_string());
                rule.spans.push(("value".into(), f.span));
            } else {
                errors.push(
                    TagsError::new(format!("expected `key=value`, found `{}`", f.text), f.span)
                        .hint("entries look like `type=ref,event=branch`"),
                );
            }
            continue;
        };
        rule.spans.push((key.clone(), vspan));
        match key.as_str() {
            "type" => {}
            "enable" => {
                check_template(&value, vspan, &globals, &mut errors);
                rule.enable = value;
            }
            "priority" => match value.parse::<i64>() {
                Ok(p) => rule.priority = p,
                Err(_) => errors.push(TagsError::new(
                    format!("priority must be an integer, found `{value}`"),
                    vspan,
                )),
            },
            "prefix" => {
                check_template(&value, vspan, &globals, &mut errors);
                rule.prefix = Some(value);
            }
            "suffix" => {
                check_template(&value, vspan, &globals, &mut errors);
                rule.suffix = Some(value);
            }
            k if !kind.keys().contains(&k) => {
                let allowed: Vec<&str> = COMMON_KEYS.iter().chain(kind.keys()).copied().collect();
                let mut e = TagsError::new(
                    format!("unknown attribute `{k}` for type={}", kind.name()),
                    f.span,
                );
                if let Some(h) = did_you_mean(k, &allowed) {
                    e = e.hint(h);
                }
                e = e.hint(format!(
                    "type={} takes: {}",
                    kind.name(),
                    allowed.join(", ")
                ));
                errors.push(e);
            }
            "value" => {
                check_template(&value, vspan, &globals, &mut errors);
                rule.value = Some(value);
            }
            "pattern" => {
                match kind {
                    TagKind::Match => match Regex::new(&value) {
                        Ok(r) => rule.regex = Some(r),
                        Err(e) => {
                            let msg = e.to_string();
                            let last = msg
                                .lines()
                                .rev()
                                .find(|l| !l.trim().is_empty())
                                .unwrap_or("invalid");
                            errors.push(TagsError::new(
                                format!("invalid regular expression: {}", last.trim()),
                                vspan,
                            ));
                        }
                    },
                    TagKind::Schedule => check_template(&value, vspan, &globals, &mut errors),
                    _ => {
                        let allowed: Vec<&str> = VERSION_EXPS
                            .iter()
                            .chain(GLOBAL_EXPS.iter())
                            .copied()
                            .collect();
                        check_template(&value, vspan, &allowed, &mut errors);
                    }
                }
                rule.pattern = Some(value);
            }
            "group" => match value.parse::<usize>() {
                Ok(g) => rule.group = g,
                Err(_) => errors.push(TagsError::new(
                    format!("group must be a number, found `{value}`"),
                    vspan,
                )),
            },
            "event" => {
                rule.event = match value.as_str() {
                    "branch" => Some(RefEvent::Branch),
                    "tag" => Some(RefEvent::Tag),
                    "pr" => Some(RefEvent::Pr),
                    _ => {
                        let mut e = TagsError::new(format!("unknown ref event `{value}`"), vspan)
                            .hint("type=ref takes event=branch, event=tag or event=pr");
                        if let Some(h) = did_you_mean(&value, &["branch", "tag", "pr"]) {
                            e = e.hint(h);
                        }
                        errors.push(e);
                        None
                    }
                }
            }
            "branch" => rule.branch = Some(value),
            "format" => match value.as_str() {
                "short" => rule.format = ShaFormat::Short,
                "long" => rule.format = ShaFormat::Long,
                _ => errors.push(
                    TagsError::new(format!("unknown sha format `{value}`"), vspan)
                        .hint("format=short or format=long"),
                ),
            },
            _ => {}
        }
    }
    if let Some(g) = (kind == TagKind::Match)
        .then_some(())
        .and(rule.regex.as_ref())
        && rule.group >= g.captures_len()
    {
        errors.push(TagsError::new(
            format!(
                "group {} does not exist: the pattern has {} group(s)",
                rule.group,
                g.captures_len() - 1
            ),
            rule.span_of("group"),
        ));
    }
    match kind {
        TagKind::Semver | TagKind::Pep440 | TagKind::Match
            if rule.pattern.as_deref().is_none_or(str::is_empty) =>
        {
            errors.push(
                TagsError::new(format!("type={} needs a pattern", kind.name()), line_span).hint(
                    match kind {
                        TagKind::Match => "for example type=match,pattern=v(.*),group=1",
                        _ => "for example pattern={{version}} or pattern={{major}}.{{minor}}",
                    },
                ),
            );
        }
        TagKind::Ref if rule.event.is_none() && !rule.spans.iter().any(|(k, _)| k == "event") => {
            errors.push(
                TagsError::new("type=ref needs an event", line_span)
                    .hint("event=branch, event=tag or event=pr"),
            );
        }
        TagKind::Raw if rule.value.as_deref().is_none_or(str::is_empty) => {
            errors.push(
                TagsError::new("type=raw needs a value", line_span)
                    .hint("for example type=raw,value=latest"),
            );
        }
        _ => {}
    }
    if errors.is_empty() {
        Ok(rule)
    } else {
        Err(errors)
    }
}

/// `latest=` of the flavor input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latest {
    #[default]
    Auto,
    True,
    False,
}

/// The `flavor` input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flavor {
    pub latest: Latest,
    pub prefix: String,
    pub prefix_on_latest: bool,
    pub suffix: String,
    pub suffix_on_latest: bool,
}

impl Flavor {
    pub fn parse(text: &str) -> Result<Flavor, Vec<TagsError>> {
        let mut fl = Flavor::default();
        let mut errors = Vec::new();
        for (body, start) in entries(text) {
            let fields = match split(body, start) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            // `onlatest=` belongs to the prefix or suffix on the same line.
            let mut last: Option<&str> = None;
            for f in &fields {
                let Some((key, value, vspan)) = key_value(f) else {
                    errors.push(TagsError::new(
                        format!("expected `key=value`, found `{}`", f.text),
                        f.span,
                    ));
                    continue;
                };
                let bool_of = |v: &str, errors: &mut Vec<TagsError>| match v {
                    "true" => true,
                    "false" => false,
                    _ => {
                        errors.push(TagsError::new(
                            format!("expected true or false, found `{v}`"),
                            vspan,
                        ));
                        false
                    }
                };
                match key.as_str() {
                    "latest" => {
                        fl.latest = match value.as_str() {
                            "auto" => Latest::Auto,
                            "true" => Latest::True,
                            "false" => Latest::False,
                            _ => {
                                errors.push(TagsError::new(
                                    format!("latest must be auto, true or false, found `{value}`"),
                                    vspan,
                                ));
                                Latest::Auto
                            }
                        };
                        last = None;
                    }
                    "prefix" => {
                        check_template(&value, vspan, &GLOBAL_EXPS, &mut errors);
                        fl.prefix = value;
                        last = Some("prefix");
                    }
                    "suffix" => {
                        check_template(&value, vspan, &GLOBAL_EXPS, &mut errors);
                        fl.suffix = value;
                        last = Some("suffix");
                    }
                    "onlatest" => match last {
                        Some("prefix") => fl.prefix_on_latest = bool_of(&value, &mut errors),
                        Some(_) => fl.suffix_on_latest = bool_of(&value, &mut errors),
                        None => errors.push(
                            TagsError::new(
                                "onlatest= goes after prefix= or suffix= on the same line",
                                f.span,
                            )
                            .hint("prefix=foo-,onlatest=true"),
                        ),
                    },
                    other => {
                        let mut e = TagsError::new(format!("unknown flavor `{other}`"), f.span);
                        if let Some(h) =
                            did_you_mean(other, &["latest", "prefix", "suffix", "onlatest"])
                        {
                            e = e.hint(h);
                        }
                        errors.push(
                            e.hint("flavor takes latest=, prefix= and suffix= (with onlatest=)"),
                        );
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(fl)
        } else {
            Err(errors)
        }
    }
}
