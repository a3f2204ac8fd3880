use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error(
        "{tool} is not installed (looked for {path}): install it with `apt-get install {package}`"
    )]
    MissingTool {
        tool: &'static str,
        path: PathBuf,
        package: &'static str,
    },
    #[error(
        "{path} is not a statically linked executable: install Debian's busybox-static (`apt-get install busybox-static`), not busybox"
    )]
    NotStatic { path: PathBuf },
    #[error(
        "{what} needs root privileges (it creates device nodes and files owned by other users)"
    )]
    NeedsRoot { what: &'static str },
    #[error("{command} failed with {status}:\n{output}")]
    Command {
        command: String,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Content(#[from] drydock_content::ContentError),
    #[error("writing the layer: {0}")]
    Layer(#[from] drydock_layer::LayerError),
}

pub(crate) fn io(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> KitError {
    let path = path.into();
    move |source| KitError::Io {
        action,
        path,
        source,
    }
}
