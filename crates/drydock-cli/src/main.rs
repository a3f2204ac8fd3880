//! The `drydock` binary. Only this crate prints to the terminal; libraries return typed errors
//! and this crate reports them (one line of cause, then context).

// The binary is the one place allowed to print.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod commands;
mod home;
mod progress_view;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // First thing, before any thread exists: this process may be the sandbox's init, re-executed
    // by drydock-sandbox (see "The sandbox" in ARCHITECTURE.md).
    drydock_sandbox::maybe_run_init();
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
