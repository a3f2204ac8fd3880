//! `drydock registry ...`: run the embedded OCI registry on its own, manage its users and access
//! tokens, collect its garbage.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args as ClapArgs, Subcommand};
use drydock_registry_server::{
    Action, AuthStore, GcOptions, Grant, RateLimit, Registry, RegistryConfig, ServeOptions,
    TlsFiles, WebhookConfig,
};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  drydock registry serve --listen 127.0.0.1:5000
  echo \"$PASSWORD\" | drydock registry user add alice --password-stdin
  drydock registry token create --repo 'acme/app' --actions pull,push --expires 30d
  docker login 127.0.0.1:5000 -u ci --password-stdin <<< \"$TOKEN\"
  drydock registry gc --dry-run")]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Serve the OCI distribution API (and /healthz, /metrics).
    Serve(ServeArgs),
    /// Manage users (Basic auth and `docker login` with a password).
    User(UserArgs),
    /// Manage access tokens (robot accounts) restricted to repositories and actions.
    Token(TokenArgs),
    /// Remove untagged manifests and unreferenced blobs.
    Gc(GcArgs),
}

#[derive(Debug, ClapArgs)]
struct StorageArg {
    /// Registry storage directory [default: $DRYDOCK_HOME/registry].
    #[arg(long, env = "DRYDOCK_REGISTRY_STORAGE")]
    storage: Option<PathBuf>,
}

impl StorageArg {
    fn path(&self) -> PathBuf {
        self.storage
            .clone()
            .unwrap_or_else(|| crate::home::drydock_home().join("registry"))
    }
}

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  drydock registry serve
  drydock registry serve --listen 0.0.0.0:443 --tls-cert cert.pem --tls-key key.pem --no-anonymous-read
  drydock registry serve --webhook https://ci.example.com/hook --webhook-secret-file hook.key")]
struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        default_value = "127.0.0.1:5000",
        env = "DRYDOCK_REGISTRY_LISTEN"
    )]
    listen: SocketAddr,
    #[command(flatten)]
    storage: StorageArg,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Let clients without credentials pull (the default).
    #[arg(long, overrides_with = "no_anonymous_read")]
    anonymous_read: bool,
    /// Require credentials for every request.
    #[arg(long, overrides_with = "anonymous_read")]
    no_anonymous_read: bool,
    /// Externally visible base URL, for the token service realm (default: from the Host header).
    #[arg(long)]
    public_url: Option<String>,
    /// How often to collect garbage while serving (`0` never).
    #[arg(long, default_value = "1h", value_parser = duration)]
    gc_interval: Duration,
    /// Never collect anything younger than this.
    #[arg(long, default_value = "1h", value_parser = duration)]
    gc_grace: Duration,
    /// Delete upload sessions idle for this long.
    #[arg(long, default_value = "24h", value_parser = duration)]
    upload_expiry: Duration,
    /// POST every push, delete and mount event to this URL (repeatable).
    #[arg(long = "webhook")]
    webhooks: Vec<String>,
    /// File holding the HMAC-SHA256 key that signs webhook bodies.
    #[arg(long)]
    webhook_secret_file: Option<PathBuf>,
    /// Requests per second allowed per client address (no limit when unset).
    #[arg(long)]
    rate_limit: Option<f64>,
    /// Burst size of --rate-limit.
    #[arg(long, default_value_t = 100)]
    rate_burst: u32,
    /// Largest blob accepted, in bytes.
    #[arg(long)]
    max_blob_size: Option<u64>,
    /// Largest manifest accepted, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_manifest_size: u64,
    /// Acknowledge writes without fsync (faster; a power loss may lose recent pushes).
    #[arg(long)]
    no_fsync: bool,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    log_format: String,
}

#[derive(Debug, ClapArgs)]
struct UserArgs {
    #[command(subcommand)]
    command: UserSub,
    #[command(flatten)]
    storage: StorageArg,
}

#[derive(Debug, Subcommand)]
enum UserSub {
    /// Add a user; the password is read from standard input.
    #[command(
        after_help = "Examples:\n  echo \"$PW\" | drydock registry user add alice --password-stdin\n  drydock registry user add reader --password-stdin --repo 'acme/**' --actions pull < pw.txt"
    )]
    Add {
        name: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Repository pattern the user may act on (repeatable; `**` = all) [default: **].
        #[arg(long = "repo")]
        repos: Vec<String>,
        /// Actions allowed on those repositories.
        #[arg(long, default_value = "pull,push,delete")]
        actions: String,
    },
    /// Remove a user.
    Remove { name: String },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, ClapArgs)]
struct TokenArgs {
    #[command(subcommand)]
    command: TokenSub,
    #[command(flatten)]
    storage: StorageArg,
}

#[derive(Debug, Subcommand)]
enum TokenSub {
    /// Create an access token and print it (it is shown once).
    #[command(
        after_help = "Examples:\n  drydock registry token create --repo 'acme/app' --actions pull,push --expires 30d\n  drydock registry token create --name deploy --repo 'acme/**' --actions pull"
    )]
    Create {
        /// Repository pattern the token may act on (repeatable): `acme/app`, `acme/*`, `acme/**`.
        #[arg(long = "repo", required = true)]
        repos: Vec<String>,
        /// Actions: pull, push, delete (comma separated).
        #[arg(long, default_value = "pull")]
        actions: String,
        /// Lifetime such as 30d, 12h, 1y; never expires when unset.
        #[arg(long, value_parser = duration)]
        expires: Option<Duration>,
        /// Name of the robot account (its `docker login` user name and event actor).
        #[arg(long, default_value = "robot")]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List access tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id, or every token with that name.
    Revoke { id_or_name: String },
}

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Examples:\n  drydock registry gc --dry-run\n  drydock registry gc --grace 0s --json"
)]
struct GcArgs {
    #[command(flatten)]
    storage: StorageArg,
    /// Report what would be removed without removing anything.
    #[arg(long)]
    dry_run: bool,
    /// Keep anything younger than this (pushes in flight).
    #[arg(long, default_value = "1h", value_parser = duration)]
    grace: Duration,
    /// Delete upload sessions idle for this long.
    #[arg(long, default_value = "24h", value_parser = duration)]
    upload_expiry: Duration,
    #[arg(long)]
    json: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    drydock_registry_server::auth::parse_duration(s)
        .ok_or_else(|| format!("invalid duration {s:?}: expected e.g. 45s, 15m, 12h, 30d, 1y"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Serve(a) => serve(a),
        Sub::User(a) => user(a),
        Sub::Token(a) => token(a),
        Sub::Gc(a) => gc(a),
    }
}

fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(&a.log_format)?;
    let mut cfg = RegistryConfig::new(a.storage.path());
    cfg.anonymous_read = !a.no_anonymous_read;
    cfg.public_url = a.public_url;
    cfg.gc_interval = (!a.gc_interval.is_zero()).then_some(a.gc_interval);
    cfg.gc_grace = a.gc_grace;
    cfg.upload_expiry = a.upload_expiry;
    cfg.durable = !a.no_fsync;
    cfg.limits.max_blob_bytes = a.max_blob_size;
    cfg.limits.max_manifest_bytes = a.max_manifest_size;
    cfg.rate_limit = a.rate_limit.map(|per_second| RateLimit {
        per_second,
        burst: a.rate_burst,
    });
    let secret = match &a.webhook_secret_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading webhook secret {}", p.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("DRYDOCK_REGISTRY_WEBHOOK_SECRET").ok(),
    };
    cfg.webhooks = a
        .webhooks
        .iter()
        .map(|u| WebhookConfig::new(u.clone(), secret.clone()))
        .collect();
    let tls = match (a.tls_cert, a.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let storage = cfg.storage.clone();
    let registry = Registry::open(cfg)
        .with_context(|| format!("opening registry storage {}", storage.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(64)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("listening on {}", a.listen))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(
            listen = %listener.local_addr()?,
            storage = %storage.display(),
            "drydock registry serving {scheme}://{}/v2/",
            listener.local_addr()?
        );
        drydock_registry_server::serve(registry, listener, ServeOptions { tls }, shutdown_signal())
            .await
            .context("serving")
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn init_logging(format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DRYDOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => bail!("unknown log format {other:?}: expected text or json"),
    }
    Ok(())
}

fn grants(repos: &[String], actions: &str) -> anyhow::Result<Vec<Grant>> {
    let actions = Action::parse_list(actions).map_err(anyhow::Error::msg)?;
    let repos: Vec<String> = if repos.is_empty() {
        vec!["**".into()]
    } else {
        repos.to_vec()
    };
    Ok(repos
        .into_iter()
        .map(|r| Grant {
            repositories: r,
            actions: actions.clone(),
        })
        .collect())
}

fn user(a: UserArgs) -> anyhow::Result<ExitCode> {
    let auth = AuthStore::open(&a.storage.path())?;
    match a.command {
        UserSub::Add {
            name,
            password_stdin: _,
            repos,
            actions,
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            auth.add_user(&name, password, grants(&repos, &actions)?)?;
            eprintln!("user {name} added");
        }
        UserSub::Remove { name } => {
            auth.remove_user(&name)?;
            eprintln!("user {name} removed");
        }
        UserSub::List { json } => {
            let users = auth.users()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                for u in users {
                    println!("{}\t{}", u.name, describe(&u.grants));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(grants: &[Grant]) -> String {
    grants
        .iter()
        .map(|g| {
            let actions: Vec<&str> = g.actions.iter().map(|a| a.as_str()).collect();
            format!("{}:{}", g.repositories, actions.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn token(a: TokenArgs) -> anyhow::Result<ExitCode> {
    let auth = AuthStore::open(&a.storage.path())?;
    match a.command {
        TokenSub::Create {
            repos,
            actions,
            expires,
            name,
            json,
        } => {
            let (info, secret) = auth.create_token(&name, grants(&repos, &actions)?, expires)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "token": secret, "id": info.id, "name": info.name, "grants": info.grants, "expires": info.expires })
                );
            } else {
                println!("{secret}");
                eprintln!(
                    "token {} ({}) for {}{}: shown once, store it now",
                    info.id,
                    info.name,
                    describe(&info.grants),
                    expires
                        .map(|_| format!(
                            ", expires {}",
                            drydock_registry_server::events::rfc3339(
                                std::time::UNIX_EPOCH
                                    + Duration::from_secs(info.expires.unwrap_or(0))
                            )
                        ))
                        .unwrap_or_default()
                );
            }
        }
        TokenSub::List { json } => {
            let tokens = auth.tokens()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                let at = |t: Option<u64>| {
                    t.map(|s| {
                        drydock_registry_server::events::rfc3339(
                            std::time::UNIX_EPOCH + Duration::from_secs(s),
                        )
                    })
                    .unwrap_or_else(|| "-".into())
                };
                println!("ID\tNAME\tGRANTS\tEXPIRES\tREVOKED");
                for t in tokens {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        t.id,
                        t.name,
                        describe(&t.grants),
                        at(t.expires),
                        at(t.revoked)
                    );
                }
            }
        }
        TokenSub::Revoke { id_or_name } => {
            let n = auth.revoke_token(&id_or_name)?;
            eprintln!("{n} token(s) revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn gc(a: GcArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = RegistryConfig::new(a.storage.path());
    cfg.gc_interval = None;
    let registry = Registry::open(cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(registry.collect_garbage(GcOptions {
        dry_run: a.dry_run,
        grace: a.grace,
        upload_expiry: a.upload_expiry,
    }))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    for m in &report.manifests_removed {
        println!(
            "{verb} manifest {}@{} ({})",
            m.repository, m.digest, m.media_type
        );
    }
    for l in &report.links_removed {
        println!("{verb} blob link {}@{}", l.repository, l.digest);
    }
    for b in &report.blobs_removed {
        println!("{verb} blob {} ({} bytes)", b.digest, b.size);
    }
    println!(
        "{} repositories: {verb} {} manifests, {} blobs ({} bytes), {} expired uploads; kept {} recent objects",
        report.repositories,
        report.manifests_removed.len(),
        report.blobs_removed.len(),
        report.bytes_reclaimed,
        report.uploads_expired,
        report.kept_recent
    );
    Ok(ExitCode::SUCCESS)
}
