//! One module per command. Each exposes an `Args` struct (clap) and a `run` function; this file
//! only wires them into the `drydock` command tree.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod build;
mod builder;
mod copy;
mod gc;
mod images;
mod import;
mod inspect;
mod kit;
mod login;
mod logout;
mod logs;
mod project;
mod pull;
mod push;
mod registry;
mod remote;
mod remote_cmd;
mod rmi;
mod rootless;
mod run;
mod runs;
mod sandbox;
mod serve;
mod server_client;
mod tag;
mod tags;
mod validate;

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
pub enum Command {
    /// Build an image from a Dockerfile, daemonless (`--check` only parses, lints and plans).
    Build(build::Args),
    /// The build cache: `builder prune`, `builder du`.
    Builder(builder::Args),
    /// List images in the local store.
    Images(images::Args),
    /// Show an image's manifest, config and layers.
    Inspect(inspect::Args),
    /// Give an image in the local store another name.
    Tag(tag::Args),
    /// Remove names from the local store.
    Rmi(rmi::Args),
    /// Copy an image between the local store, OCI layouts and docker archives.
    Copy(copy::Args),
    /// Import a root filesystem tarball as an image.
    Import(import::Args),
    /// Remove unreferenced content from the local store.
    Gc(gc::Args),
    /// Make base images from the host (busybox, debian).
    Kit(kit::Args),
    /// Push an image of the local store to a registry.
    Push(push::Args),
    /// Pull an image from a registry into the local store.
    Pull(pull::Args),
    /// Tags and labels a run would push (`tags --image NAME`), or a registry's tags (`tags list REPO`).
    Tags(tags::Args),
    /// Check drydock.yml: every error with file:line:col and a caret.
    Validate(validate::Args),
    /// Run the pipeline of a repository (drydock.yml) locally.
    Run(run::Args),
    /// List recorded runs.
    Runs(runs::Args),
    /// Print the logs of a recorded run.
    Logs(logs::Args),
    /// Save registry credentials after checking them.
    Login(login::Args),
    /// Remove saved registry credentials.
    Logout(logout::Args),
    /// Run the embedded OCI registry; manage its users, tokens and garbage.
    Registry(registry::Args),
    /// Run the server: webhooks, schedules, chains, queue, web UI, REST API, registry at /v2/.
    Serve(serve::Args),
    /// Register and configure projects on a drydock server.
    Project(project::Args),
    /// Runs on a drydock server: trigger, list, show, logs, cancel, re-run.
    Remote(remote_cmd::Args),
    /// Internal: run a command in a sandbox.
    #[command(hide = true)]
    Sandbox(sandbox::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Before anything starts a thread: a non-root build or pipeline run runs inside a user
    // namespace.
    if let Some(code) = rootless::enter_or_reexec()? {
        return Ok(code);
    }
    match cli.command {
        Command::Build(a) => build::run(a),
        Command::Builder(a) => builder::run(a),
        Command::Images(a) => images::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Tag(a) => tag::run(a),
        Command::Rmi(a) => rmi::run(a),
        Command::Copy(a) => copy::run(a),
        Command::Import(a) => import::run(a),
        Command::Gc(a) => gc::run(a),
        Command::Kit(a) => kit::run(a),
        Command::Push(a) => push::run(a),
        Command::Pull(a) => pull::run(a),
        Command::Tags(a) => tags::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Run(a) => run::run(a),
        Command::Runs(a) => runs::run(a),
        Command::Logs(a) => logs::run(a),
        Command::Login(a) => login::run(a),
        Command::Logout(a) => logout::run(a),
        Command::Registry(a) => registry::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Project(a) => project::run(a),
        Command::Remote(a) => remote_cmd::run(a),
        Command::Sandbox(a) => sandbox::run(a),
    }
}
