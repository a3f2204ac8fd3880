//! GitHub Actions expressions, as used in `drydock.yml`: `${{ github.ref == 'refs/heads/main' }}`.
//!
//! What it is for: parsing expressions (with byte spans into the text they came from) and
//! evaluating them with GitHub's semantics: loose equality with number coercion, case-insensitive
//! string comparison, `&&`/`||` returning operands, `*` object filters, and the functions
//! `contains`, `startsWith`, `endsWith`, `format`, `join`, `toJSON`, `fromJSON`, `hashFiles`,
//! `success`, `failure`, `always`, `cancelled`.
//!
//! What it is not: it knows nothing of YAML or of the pipeline. Contexts (`github`, `env`,
//! `needs`, ...) are a [`Value`] tree the caller builds; `hashFiles` is a caller-supplied callback
//! (it reads files) and the status functions read a caller-supplied [`JobStatus`]. Pure: no IO,
//! no clock, never panics on input (nesting depth and length are bounded).
//!
//! - [`parse_expression`]: one expression (the inside of `${{ }}`, or a whole `if:`).
//! - [`Template`]: a string with `${{ }}` parts; [`Template::eval`] keeps the type of a value
//!   that is a single expression, and interpolates strings otherwise.
//! - [`Condition`]: an `if:` value, with GitHub's implicit `success() &&` when no status
//!   function is used.
//! - [`Expr::eval`] with an [`Env`]; errors are [`ExprError`]s with spans, convertible to
//!   [`drydock_diagnostics::Diagnostic`].

mod ast;
mod error;
mod eval;
mod functions;
mod lexer;
mod number;
mod parser;
mod template;
mod value;

pub use ast::{BinOp, Expr, ExprKind, Literal, Segment};
pub use error::{ExprError, ExprErrorKind};
pub use eval::{Env, HashFiles, JobStatus};
pub use number::{format_number, parse_number_str};
pub use parser::{MAX_DEPTH, MAX_LEN, ParseOptions, parse_expression, parse_expression_with};
pub use template::{Condition, Template};
pub use value::Value;
