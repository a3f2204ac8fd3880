//! The syntax tree: every instruction, flag and argument with its byte span in the source.

use drydock_diagnostics::{Diagnostic, Span};

use crate::flags::{Duration, Mount, NetworkMode, SecurityMode};

/// A piece of source text after parsing, with the span it came from.
///
/// `text` is what BuildKit hands to the next stage (for flags: quotes removed; for arguments: the
/// raw text, which word expansion later unquotes). The span always covers the raw source text.
#[derive(Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub span: Span,
}

impl std::fmt::Debug for Word {
    /// Compact: `"text"@start..end`, so syntax-tree dumps stay readable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}@{}..{}", self.text, self.span.start, self.span.end)
    }
}

impl Word {
    pub fn new(text: impl Into<String>, span: Span) -> Self {
        Self {
            text: text.into(),
            span,
        }
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct Dockerfile {
    pub directives: Directives,
    pub instructions: Vec<Instruction>,
    /// Problems found while parsing. Errors make the file unusable for planning; warnings
    /// (such as empty continuation lines) do not.
    pub diagnostics: Vec<Diagnostic>,
    /// Every comment line (text after `#`, trimmed) with its span, for tools that want them.
    pub comments: Vec<Word>,
}

impl Dockerfile {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The escape character in effect (`\` unless `# escape=` says otherwise).
    pub fn escape(&self) -> char {
        self.directives
            .escape
            .as_ref()
            .and_then(|w| w.text.chars().next())
            .unwrap_or('\\')
    }
}

/// Parser directives from the top of the file (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, Default)]
pub struct Directives {
    pub syntax: Option<Word>,
    pub escape: Option<Word>,
    pub check: Option<Word>,
}

/// The instruction keywords BuildKit knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Keyword {
    From,
    Run,
    Cmd,
    Label,
    Maintainer,
    Expose,
    Env,
    Add,
    Copy,
    Entrypoint,
    Volume,
    User,
    Workdir,
    Arg,
    Onbuild,
    Stopsignal,
    Healthcheck,
    Shell,
}

impl Keyword {
    pub const ALL: [Keyword; 18] = [
        Keyword::From,
        Keyword::Run,
        Keyword::Cmd,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Expose,
        Keyword::Env,
        Keyword::Add,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Volume,
        Keyword::User,
        Keyword::Workdir,
        Keyword::Arg,
        Keyword::Onbuild,
        Keyword::Stopsignal,
        Keyword::Healthcheck,
        Keyword::Shell,
    ];

    /// Case-insensitive lookup, as BuildKit does.
    pub fn parse(s: &str) -> Option<Keyword> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }

    /// The canonical (upper-case) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::From => "FROM",
            Keyword::Run => "RUN",
            Keyword::Cmd => "CMD",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Expose => "EXPOSE",
            Keyword::Env => "ENV",
            Keyword::Add => "ADD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Volume => "VOLUME",
            Keyword::User => "USER",
            Keyword::Workdir => "WORKDIR",
            Keyword::Arg => "ARG",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Stopsignal => "STOPSIGNAL",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Shell => "SHELL",
        }
    }
}

impl std::fmt::Display for Keyword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `--name[=value]` flag as written before an instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The name without the leading `--`.
    pub name: Word,
    /// The value with quotes and escapes removed, if an `=` was given.
    pub value: Option<Word>,
    /// The whole flag.
    pub span: Span,
}

/// One instruction, possibly spanning several lines (continuations, heredocs).
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub keyword: Keyword,
    /// The keyword as written (for casing checks).
    pub keyword_word: Word,
    pub flags: Vec<Flag>,
    pub command: Command,
    pub heredocs: Vec<Heredoc>,
    /// From the keyword to the end of the last line (including heredoc bodies).
    pub span: Span,
    /// The arguments after the flags, raw, with continuations joined.
    pub args: Word,
    /// 1-based line numbers of the first and last source line.
    pub start_line: usize,
    pub end_line: usize,
    /// The logical line (continuations joined, comments removed): what BuildKit calls `Original`.
    pub original: String,
}

/// An inline document (`<<EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter with quotes removed; for `COPY` also the file name.
    pub name: String,
    /// The `<<EOF` word.
    pub span: Span,
    /// The body, each line terminated by `\n`, leading tabs not yet removed for `<<-`.
    pub content: String,
    pub content_span: Span,
    /// `<<-`: strip leading tabs.
    pub chomp: bool,
    /// Unquoted delimiter: variables in the body are expanded (for COPY/ADD).
    pub expand: bool,
}

impl Heredoc {
    /// The body as it is used: with leading tabs removed from every line for `<<-`.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        let mut out = String::with_capacity(self.content.len());
        for line in self.content.split_inclusive('\n') {
            out.push_str(line.trim_start_matches('\t'));
        }
        out
    }
}

/// Exec form (`["a", "b"]`) or shell form (`a b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// Exec form: the JSON strings, decoded.
    Exec(Vec<Word>),
    /// Shell form: the raw text, not expanded (the shell does that).
    Shell(Word),
}

impl CommandLine {
    pub fn is_exec(&self) -> bool {
        matches!(self, CommandLine::Exec(_))
    }

    /// The arguments as BuildKit's `handleJSONArgs` returns them: the exec words, or the shell
    /// text as one element (none when empty).
    pub fn args(&self) -> Vec<String> {
        match self {
            CommandLine::Exec(w) => w.iter().map(|w| w.text.clone()).collect(),
            CommandLine::Shell(w) if w.text.is_empty() => Vec::new(),
            CommandLine::Shell(w) => vec![w.text.clone()],
        }
    }
}

/// `KEY=value` in ENV and LABEL (or the legacy `KEY value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Word,
    pub value: Word,
    /// Written as `KEY value` (LegacyKeyValueFormat).
    pub legacy: bool,
}

/// `NAME[=default]` in ARG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: Word,
    pub default: Option<Word>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    pub image: Word,
    /// The `AS` keyword as written.
    pub as_keyword: Option<Word>,
    /// The stage name as written (compare with `eq_ignore_ascii_case`).
    pub name: Option<Word>,
    pub platform: Option<Word>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub command: CommandLine,
    pub mounts: Vec<MountFlag>,
    pub network: Option<(NetworkMode, Span)>,
    pub security: Option<(SecurityMode, Span)>,
}

/// A `--mount` flag: its raw value (for later expansion) and, when it parsed, the typed mount.
///
/// Mount options may contain variables, so the frontend re-parses `raw` after expansion; the
/// parser validates what it can without the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct MountFlag {
    pub raw: Word,
    pub mount: Option<Mount>,
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub sources: Vec<Word>,
    pub dest: Word,
    /// The sources and destination were written as a JSON array.
    pub json: bool,
    pub from: Option<Word>,
    pub chown: Option<Word>,
    pub chmod: Option<Word>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<Word>,
    /// ADD only.
    pub keep_git_dir: bool,
    /// ADD only.
    pub checksum: Option<Word>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    None,
    Cmd {
        command: CommandLine,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<i64>,
    },
}

/// An instruction's arguments, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    From(From),
    Run(Run),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell(Vec<Word>),
    Label(Vec<KeyValue>),
    Env(Vec<KeyValue>),
    Maintainer(Word),
    Expose(Vec<Word>),
    Add(Copy),
    Copy(Copy),
    Volume(Vec<Word>),
    User(Word),
    Workdir(Word),
    Arg(Vec<ArgDecl>),
    Onbuild(Box<Instruction>),
    Stopsignal(Word),
    Healthcheck(Healthcheck),
    /// The instruction had errors (reported in [`Dockerfile::diagnostics`]).
    Invalid,
}
