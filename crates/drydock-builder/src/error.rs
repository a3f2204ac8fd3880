//! Why a build failed. Every variant names what was involved (file, step, reference, digest)
//! and, for steps, where the Dockerfile asked for it.

use std::io;
use std::path::PathBuf;

use drydock_diagnostics::{Diagnostic, Span};

/// The Dockerfile a diagnostic points into, so the caller can render it with a caret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceText {
    /// The name diagnostics use (`Dockerfile`, `docker/app.Dockerfile`).
    pub name: String,
    pub text: String,
}

/// A step that failed: where it came from, what it was, and the last lines it printed.
#[derive(Debug, Clone)]
pub struct StepFailure {
    /// `RUN make`, `COPY src/ /app/`...
    pub step: String,
    /// Why, in one line (`exit code 2`, `COPY source "x" not found in the build context`).
    pub message: String,
    /// The Dockerfile line(s), with a caret under the instruction, when the plan knows them.
    pub diagnostic: Option<Diagnostic>,
    /// The last lines of the step's output (secrets masked).
    pub output_tail: Vec<String>,
    /// The process's exit code, for RUN steps.
    pub exit_code: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile does not parse or plan; the diagnostics say where.
    #[error("{}", dockerfile_summary(.diagnostics))]
    Dockerfile {
        source_text: SourceText,
        diagnostics: Vec<Diagnostic>,
    },

    #[error("build context {path}: {message}")]
    Context { path: String, message: String },

    /// A base image could not be found; nothing ran.
    #[error("base image {reference} (line {line}) not found: {}", looked.join("; "))]
    BaseImage {
        reference: String,
        line: usize,
        /// Where it was looked for, and what each place said.
        looked: Vec<String>,
    },

    #[error("{} failed: {}", .0.step, .0.message)]
    Step(Box<StepFailure>, Option<SourceText>),

    #[error("secret {id:?}: {message}")]
    Secret { id: String, message: String },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(transparent)]
    Content(#[from] drydock_content::ContentError),

    #[error(transparent)]
    Layer(#[from] drydock_layer::LayerError),

    #[error(transparent)]
    Sandbox(#[from] drydock_sandbox::SandboxError),

    #[error(transparent)]
    Registry(#[from] drydock_registry_client::RegistryError),

    #[error("output {what}: {message}")]
    Output { what: String, message: String },

    #[error("build cache: {0}")]
    Cache(String),

    #[error("invalid build request: {0}")]
    Request(String),

    #[error("unsupported: {0}")]
    Unsupported(String),

    #[error("the build was cancelled")]
    Cancelled,
}

fn dockerfile_summary(diags: &[Diagnostic]) -> String {
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    match errors.first() {
        Some(first) if errors.len() == 1 => format!("Dockerfile: {}", first.message),
        Some(first) => format!(
            "Dockerfile: {} (and {} more errors)",
            first.message,
            errors.len() - 1
        ),
        None => "Dockerfile: invalid".to_string(),
    }
}

impl BuildError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        BuildError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Dockerfile diagnostics (for [`BuildError::Dockerfile`] and failed steps), with the text
    /// they point into.
    pub fn diagnostics(&self) -> Option<(&SourceText, Vec<&Diagnostic>)> {
        match self {
            BuildError::Dockerfile {
                source_text,
                diagnostics,
            } => Some((source_text, diagnostics.iter().collect())),
            BuildError::Step(f, Some(src)) => f.diagnostic.as_ref().map(|d| (src, vec![d])),
            _ => None,
        }
    }
}

/// A diagnostic for a step located at `span` in the Dockerfile.
pub(crate) fn step_diagnostic(message: &str, start: usize, end: usize) -> Diagnostic {
    Diagnostic::error(message.to_string(), Span::new(start, end))
}

/// `io::Result` with the operation and path attached.
pub(crate) trait IoCtx<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, BuildError>;
}

impl<T> IoCtx<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, BuildError> {
        self.map_err(|e| BuildError::io(op, path, e))
    }
}
