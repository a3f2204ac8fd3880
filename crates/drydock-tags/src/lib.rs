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
//!
//! Decisions where metadata-action's documentation is silent or where drydock differs:
//! - A tag is sanitised as metadata-action does (runs of characters outside `[A-Za-z0-9_.-]`
//!   become one `-`), then leading `.`/`-` are dropped and it is cut to 128 characters, because
//!   a registry refuses such tags; a tag that ends up empty is skipped.
//! - An explicit `prefix=`/`suffix=` (even empty) replaces the flavor's; the built-in defaults
//!   `sha-` (type=sha) and `pr-` (type=ref,event=pr) also keep the flavor's prefix away, as in
//!   metadata-action.
//! - `latest=auto` adds `latest` for `type=ref,event=tag`, `type=match`, a `type=semver`
//!   that is not a pre-release and a `type=pep440` that is not a pre/post/dev release;
//!   `latest` comes last, after the priority-sorted tags.
//! - `enable=` must be `true` or `false` after global expressions (`${{ }}` is evaluated by
//!   the caller first); anything else is an error, not "disabled".
//! - Unknown attributes are errors with a suggestion (metadata-action ignores them).
//! - `type=describe` (default priority 500) tags with `git describe --tags --always`.
//! - `org.opencontainers.image.version` is left out when no tag was produced; `created` is
//!   the commit time (never the clock), so two runs of the same commit agree.
//! - A field holding a comma is double-quoted, as in CSV: `"pattern=\d{1,3}"`.

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
