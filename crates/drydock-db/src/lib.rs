//! drydock's state database: runs, their jobs and steps, log lines, and the images they built.
//!
//! SQLite is the embedded default (a file under `DRYDOCK_HOME`, WAL mode). The SQL is kept
//! portable (no `INSERT OR REPLACE`, `RETURNING` for ids, integer millisecond timestamps passed
//! in by the caller) so a PostgreSQL backend can share the schema and queries.
//!
//! - [`Db`]: open (creating and migrating), and every query, grouped by table.
//! - [`model`]: the rows ([`Run`], [`Job`], [`Step`], [`LogLine`], [`RunImage`]) and statuses.
//! - [`server`]: the tables of `drydock serve` (projects, sealed secrets, deliveries, the
//!   queue's run facts, schedules, chains, users, API tokens, sessions, watched images).
//!
//! Secrets never reach this crate in plaintext: callers mask log lines before appending them.

mod db;
mod error;
pub mod model;
mod schema;
pub mod server;

pub use db::Db;
pub use error::DbError;
pub use model::{Job, LogLine, NewRun, Run, RunDetail, RunImage, Status, Step};
pub use server::{ApiToken, Chain, Project, RunMeta, User};
