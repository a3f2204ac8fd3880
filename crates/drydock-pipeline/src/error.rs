use std::path::PathBuf;

/// Why a run could not be run at all (a job failing is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("run database: {0}")]
    Db(#[from] drydock_db::DbError),
    #[error("{0}")]
    Pipeline(String),
    #[error("workspace {path}: {source}")]
    Workspace {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Git(#[from] crate::git::GitError),
}
