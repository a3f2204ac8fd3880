//! `drydock serve`: webhooks, schedules, build chains, the run queue, the web UI with live
//! logs, the REST API and the embedded registry at `/v2/`, in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args as ClapArgs;
use drydock_server::{Server, ServerConfig};

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "State lives under --data (default DRYDOCK_HOME): drydock.db (SQLite), secret.key
(the key secrets are encrypted with, created at first start, mode 0600), git/ (repository
mirrors), registry/ (the embedded registry). At first start a user `admin` is created: its
password is in DATA/initial-admin-password (or --admin-password-file), and an admin API token
in DATA/admin-token, which `drydock project` and `drydock remote` read on this machine.

Examples:
  drydock serve
  drydock serve --listen 0.0.0.0:8080 --public-url https://ci.example.com
  drydock serve --data /srv/drydock --jobs 4
  drydock serve --rotate-key             # re-encrypt every secret under a new key, then exit

Webhook set-up (GitHub): payload URL https://ci.example.com/hooks/PROJECT/github, content
type application/json, the project's webhook secret, events: pushes and pull requests."
)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "DRYDOCK_LISTEN")]
    listen: SocketAddr,
    /// Data directory (default: DRYDOCK_HOME).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Database URL: sqlite:///path/to/file.db (default: DATA/drydock.db).
    #[arg(long, env = "DRYDOCK_DATABASE")]
    database: Option<String>,
    /// The URL people and forges reach this server at (links in commit statuses).
    #[arg(long, env = "DRYDOCK_PUBLIC_URL")]
    public_url: Option<String>,
    /// Jobs running at once on this server (default: the number of CPUs).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
    /// PEM certificate chain for HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The first admin's password, from a file (first start only).
    #[arg(long, value_name = "FILE")]
    admin_password_file: Option<PathBuf>,
    /// How often upstream images in `on.image` are checked, in seconds (HEAD requests).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    image_poll: u64,
    /// Re-encrypt every stored secret under a new key, then exit (stop the server first).
    #[arg(long)]
    rotate_key: bool,
}

fn database_path(url: Option<&str>) -> anyhow::Result<Option<PathBuf>> {
    let Some(url) = url else { return Ok(None) };
    if let Some(p) = url.strip_prefix("sqlite://") {
        if p.is_empty() {
            bail!("--database sqlite:// needs a path: sqlite:///var/lib/drydock/drydock.db");
        }
        return Ok(Some(PathBuf::from(p)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        bail!(
            "--database {}: PostgreSQL is not built yet (the schema and queries are portable; use sqlite:// for now)",
            url.split('@').next_back().unwrap_or("postgres://…")
        );
    }
    bail!("--database {url}: expected sqlite:///path (or postgres://, not built yet)")
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let data = args.data.clone().unwrap_or_else(crate::home::drydock_home);
    let database = database_path(args.database.as_deref())?;
    if args.rotate_key {
        let (n, id) = drydock_server::rotate_key(&data, database.as_deref())
            .context("rotating the secrets key")?;
        println!("re-encrypted {n} values; the key is now {id}");
        return Ok(ExitCode::SUCCESS);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let mut cfg = ServerConfig::new(&data, args.listen);
    cfg.database = database;
    cfg.public_url = args.public_url.clone();
    if let Some(n) = args.jobs {
        cfg.job_limit = n.max(1);
    }
    cfg.drydock_binary = std::env::current_exe().ok();
    cfg.image_poll = std::time::Duration::from_secs(args.image_poll.max(1));
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        cfg.tls = Some(drydock_registry_server::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    if let Some(f) = &args.admin_password_file {
        let p = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        cfg.admin_password = Some(p.trim_end_matches(['\n', '\r']).to_string());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut server = Server::start(cfg).await.context("starting the server")?;
        eprintln!(
            "drydock serve: listening on {} (UI and API), registry at {}/v2/, data in {}",
            server.url(),
            server.url(),
            data.display()
        );
        tokio::select! {
            r = server.wait() => r.context("serving")?,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("shutting down");
                server.shutdown().await;
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
