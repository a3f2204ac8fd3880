use drydock_oci::Digest;

/// What went wrong talking to a registry. Messages name the registry, repository, reference
/// or digest, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {host}: {message}")]
    Connect { host: String, message: String },
    #[error("{operation}: registry {host} answered {status}{}", detail(.code, .message))]
    Http {
        operation: String,
        host: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    #[error(
        "{operation}: registry {host} refused the credentials{}{}",
        detail(.code, .message),
        if *.had_credentials { "" } else { " (no credentials found: run `drydock login`, or set DRYDOCK_REGISTRY_USER and DRYDOCK_REGISTRY_PASSWORD)" }
    )]
    Unauthorized {
        operation: String,
        host: String,
        code: Option<String>,
        message: Option<String>,
        had_credentials: bool,
    },
    #[error("{what} was not found on {host}")]
    NotFound { what: String, host: String },
    #[error(
        "{reference} is a Docker schema1 manifest ({media_type}); schema1 is deprecated and unsupported: re-push the image with a current client"
    )]
    Schema1 {
        reference: String,
        media_type: String,
    },
    #[error("{what}: digest mismatch, expected {expected}, got {actual}; nothing was stored")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: {message}")]
    Protocol { what: String, message: String },
    #[error("token service {realm}: {message}")]
    Token { realm: String, message: String },
    #[error(transparent)]
    Content(#[from] drydock_content::ContentError),
    #[error(transparent)]
    Credentials(#[from] crate::credentials::CredentialError),
    #[error(transparent)]
    Config(#[from] crate::registries::ConfigError),
    #[error("no manifest in {reference} matches platform {platform} (available: {available})")]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{operation}: registry {host} lost the upload session")]
    UploadLost { operation: String, host: String },
    #[error("cancelled")]
    Cancelled,
}

fn detail(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" ({c}: {m})"),
        (Some(c), None) => format!(" ({c})"),
        (None, Some(m)) => format!(" ({m})"),
        (None, None) => String::new(),
    }
}

impl RegistryError {
    pub(crate) fn protocol(what: impl Into<String>, message: impl Into<String>) -> Self {
        RegistryError::Protocol {
            what: what.into(),
            message: message.into(),
        }
    }

    /// Whether retrying the whole operation could help (connection trouble, server errors).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Connect { .. } => true,
            RegistryError::Http { status, .. } => *status == 429 || *status >= 500,
            RegistryError::Io { .. } | RegistryError::UploadLost { .. } => true,
            _ => false,
        }
    }
}
