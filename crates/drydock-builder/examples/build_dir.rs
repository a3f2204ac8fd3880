//! `build_dir DIR`: builds DIR (with DIR/Dockerfile) under `$DRYDOCK_HOME` and prints the
//! image ID and the time taken; for profiling the builder without the CLI.
#![allow(clippy::print_stdout, clippy::print_stderr)]

fn main() {
    drydock_sandbox::maybe_run_init();
    let dir = std::env::args().nth(1).expect("usage: build_dir DIR");
    let home = std::env::var("DRYDOCK_HOME").expect("DRYDOCK_HOME");
    let b = drydock_builder::Builder::new(home).expect("builder");
    let t = std::time::Instant::now();
    let req = drydock_builder::BuildRequest {
        context: drydock_builder::ContextSource::Dir(dir.into()),
        ..Default::default()
    };
    match b.build(req) {
        Ok(o) => println!(
            "{} {:.2}s ({} run, {} cached)",
            o.config_digest,
            t.elapsed().as_secs_f64(),
            o.stats.executed,
            o.stats.cached
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
