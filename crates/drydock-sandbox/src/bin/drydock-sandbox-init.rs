//! A tiny binary that is nothing but the sandbox init (plus a manual `run` mode), used by this
//! crate's tests and benchmarks. The `drydock` binary carries the same init: it calls
//! [`drydock_sandbox::maybe_run_init`] first thing in `main`.
//!
//! Manual use: `drydock-sandbox-init run [options] -- CMD [ARGS...]` (see `usage`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "drydock-sandbox-init/cli.rs"]
mod cli;

fn main() {
    drydock_sandbox::maybe_run_init();
    let code = cli::main(std::env::args().skip(1).collect());
    drydock_sandbox::wait_for_cleanup(std::time::Duration::from_secs(30));
    std::process::exit(code);
}
