use std::process::ExitCode;

use clap::Args as ClapArgs;
use drydock_registry_client::credentials::{docker_config_path, remove_login};

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Examples:\n  drydock logout ghcr.io\n  drydock logout            # Docker Hub"
)]
pub struct Args {
    /// Registry host (`docker.io` when omitted).
    registry: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let registry = args.registry.unwrap_or_else(|| "docker.io".into());
    let config = docker_config_path();
    if remove_login(&config, &registry)? {
        println!("Removed login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
