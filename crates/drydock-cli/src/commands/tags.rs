use std::process::ExitCode;

use clap::{Args as ClapArgs, Subcommand};
use drydock_oci::Reference;

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Examples:\n  drydock tags list localhost:5000/acme/app\n  drydock tags list --json ghcr.io/acme/app"
)]
pub struct Args {
    #[command(subcommand)]
    command: TagsCommand,
}

#[derive(Debug, Subcommand)]
enum TagsCommand {
    /// List the tags of a repository in a registry.
    List(ListArgs),
}

#[derive(Debug, ClapArgs)]
struct ListArgs {
    /// Repository, without tag (`docker://` optional).
    repository: String,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        TagsCommand::List(a) => {
            let repo = Reference::parse_repository(
                a.repository
                    .strip_prefix("docker://")
                    .unwrap_or(&a.repository),
            )?;
            let client = super::remote::client(true)?;
            let tags = client.tags(&repo)?;
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"repository": repo.name(), "tags": tags})
                );
            } else {
                for t in tags {
                    println!("{t}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
