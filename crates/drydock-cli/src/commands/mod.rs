//! One module per command. Each exposes an `Args` struct (clap) and a `run` function; this file
//! only wires them into the `drydock` command tree.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "drydock",
    version,
    about = "From git push to a tested, tagged image in a registry: one binary, no Docker daemon.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {}
}
