//! The sandbox init for the builder's own tests and examples: the `drydock` binary carries the
//! same init (it calls `maybe_run_init` first thing in `main`). Run directly, it does nothing.
#![allow(clippy::print_stderr)]

fn main() {
    drydock_sandbox::maybe_run_init();
    eprintln!(
        "drydock-builder-init: the sandbox init used by drydock-builder's tests; not for direct use"
    );
    std::process::exit(2);
}
