//! The sandbox init for this crate's tests and benchmarks: the sandbox re-executes a binary as
//! the init of each sandbox, and a test harness cannot be that binary. The `drydock` binary
//! carries the same init (it calls [`drydock_sandbox::maybe_run_init`] first in `main`).
#![allow(clippy::print_stderr)]

fn main() {
    drydock_sandbox::maybe_run_init();
    eprintln!("drydock-pipeline-init: only the sandbox runs this binary (as its init)");
    std::process::exit(2);
}
