//! Image tags and OCI labels for an event, with the `tags` and `flavor` inputs of
//! docker/metadata-action and their semantics: types `schedule`, `semver`, `pep440`, `match`,
//! `edge`, `ref`, `raw`, `sha` (and drydock's `describe`), attributes `enable`, `priority`,
//! `prefix`, `suffix`, `value`, `pattern`, `group`, `event`, `branch`, `format`, global
//! expressions (`{{branch}}`, `{{tag}}`, `{{sha}}`, `{{base_ref}}`, `{{is_default_branch}}`,
//! `{{date 'FMT' tz='…'}}`, `{{commit_date …}}`), `latest=auto|true|false`, tag
//! sanitisation, priority ordering and de-duplication.
//!
//! What it is not: it does not read git or the clock. The caller fills a [`TagEvent`] (ref, sha,
//! default branch, PR number, commit time, `git describe` output, and the "current" time for
//! `{{date}}`), so the same input always gives the same tags; `created` comes from the commit
//! time. `${{ }}` expressions in the inputs are evaluated by the caller before parsing.
//!
//! - [`TagsSpec::parse`] / [`Flavor::parse`]: the inputs, with errors that carry spans.
//! - [`compute`]: tags for one event and a list of repositories, plus the OCI labels.
//! - [`time`]: UTC civil time, fixed-offset time zones and moment-style date formats (shared
//!   with the cron module of drydock-config).

mod compute;
mod csv;
mod error;
mod handlebars;
mod pep440;
mod sanitize;
mod semver;
mod spec;
pub mod time;

pub use compute::{Output, TagEvent, compute};
pub use error::TagsError;
pub use pep440::Pep440;
pub use sanitize::{sanitize_repository, sanitize_tag};
pub use semver::SemVer;
pub use spec::{Flavor, Latest, RefEvent, ShaFormat, TagKind, TagRule, TagsSpec};
