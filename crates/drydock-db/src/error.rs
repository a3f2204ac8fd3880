use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "database {path} has schema version {found}, newer than this drydock understands ({known}); upgrade drydock"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("no run {0}")]
    NoRun(i64),
    #[error("run {run} has no job {job:?}")]
    NoJob { run: i64, job: String },
    #[error("invalid stored value in {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
}
