use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use drydock_registry_client::Credential;
use drydock_registry_client::credentials::{docker_config_path, save_login};

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Checks the credentials against the registry, then saves them the way `docker login` does\n(credential helper when configured, else ~/.docker/config.json; other keys are kept).\n\nExamples:\n  echo \"$TOKEN\" | drydock login ghcr.io -u octocat --password-stdin\n  drydock login localhost:5000 -u admin --password-stdin < password.txt"
)]
pub struct Args {
    /// Registry host (`docker.io` when omitted).
    registry: Option<String>,
    #[arg(long, short)]
    username: String,
    /// Read the password (or token) from standard input; the only way to pass it.
    #[arg(long)]
    password_stdin: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.password_stdin,
        "pass the password on standard input with --password-stdin (never on the command line)"
    );
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    anyhow::ensure!(!password.is_empty(), "empty password on standard input");
    let registry = args.registry.unwrap_or_else(|| "docker.io".into());
    let registry = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let credential = Credential::Basic {
        username: args.username,
        password,
    };
    let client = super::remote::client(true)?;
    client.check_login(&registry, &credential)?;
    let config = docker_config_path();
    save_login(&config, &registry, &credential)?;
    println!(
        "Login Succeeded ({registry}, saved in {})",
        config.display()
    );
    Ok(ExitCode::SUCCESS)
}
