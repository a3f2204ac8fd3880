//! The Dockerfile language as BuildKit reads it: parsing with byte spans, word expansion,
//! `.dockerignore` matching and the build checks.
//!
//! This crate is pure (no IO, no clock) and never panics on input. It knows nothing of build
//! plans: `drydock-frontend` turns a [`Dockerfile`] into a plan.
//!
//! - [`parse`]: text to [`Dockerfile`] (directives, instructions with typed [`Command`]s,
//!   flags, heredocs, comments) plus [`Diagnostic`](drydock_diagnostics::Diagnostic)s.
//! - [`ast`]: the syntax tree ([`Instruction`], [`Word`], [`CommandLine`], [`Copy`], ...).
//! - [`flags`]: typed flag values ([`Mount`], [`Duration`], network and security modes).
//! - [`expand`]: BuildKit's shell lexer (`$VAR`, `${VAR:-x}`, `${VAR#pat}`, quotes, escapes).
//! - [`dockerignore`]: Docker's `.dockerignore` matcher, with subtree pruning support.
//! - [`lint`]: the build checks (rules, `# check=` configuration, syntax-only checks).
//! - [`suggest`]: "did you mean" by edit distance.

pub mod ast;
pub mod dockerignore;
pub mod expand;
pub mod flags;
mod json;
mod lines;
pub mod lint;
mod parser;
pub mod suggest;
mod words;

pub use ast::{
    ArgDecl, Command, CommandLine, Copy, Directives, Dockerfile, Flag, From, Healthcheck, Heredoc,
    Instruction, KeyValue, Keyword, MountFlag, Run, Word,
};
pub use dockerignore::Dockerignore;
pub use expand::{Env, ExpandError, Expanded, Lexer, NoEnv};
pub use flags::{Duration, Mount, NetworkMode, SecurityMode, Sharing};
pub use json::{JsonArgs, parse_json_args};
pub use lint::{CheckConfig, Rule};
pub use parser::parse;
