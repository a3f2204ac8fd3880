//! Rootless builds, pipelines and servers: `drydock build`, `drydock builder prune`,
//! `drydock run` and `drydock serve` started by a non-root user re-run themselves inside a user
//! namespace that maps the user's `/etc/subuid` and
//! `/etc/subgid` ranges (container 0 = the user, 1.. = the subordinate ids), where they are root:
//! layers are extracted with their owners, `COPY --chown` works, layer tars record the ids a
//! root build records, and snapshots owned by subordinate ids can be deleted. A pipeline run
//! inside works as root of the namespace too: host-shell steps, sandboxed jobs and `images:`
//! builds; what it writes as root (the run database, logs) belongs to the user outside. A
//! server inside runs its queued pipelines the same way. See
//! `drydock_sandbox::userns`.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::CommandFactory;

use super::Cli;

/// Call before anything else runs (no thread may exist yet). In the re-executed process: enters
/// the namespace and returns `None` (go on with the command). In a non-root process whose
/// command needs the namespace: runs the command again inside one and returns its exit code.
/// Otherwise `None`.
pub fn enter_or_reexec() -> anyhow::Result<Option<ExitCode>> {
    if drydock_sandbox::userns::enter_if_reexecuted()? {
        REEXECUTED.store(true, Ordering::Relaxed);
        return Ok(None);
    }
    // The effective uid is 0: real root, or already root of a user namespace.
    if rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let Some(what) = needs_user_namespace(std::env::args_os()) else {
        return Ok(None);
    };
    // A pipeline of host-shell jobs needs no namespace: without subordinate ids, `drydock run`
    // and `drydock serve` go on as the user (the engine refuses image jobs and `images:` builds
    // itself, naming why); builds and prunes have no such half and keep the error.
    if matches!(what, "drydock run" | "drydock serve")
        && let Err(e) = drydock_sandbox::userns::check_subordinate_ids(what)
    {
        eprintln!(
            "warning: {e}
  {what} goes on without a user namespace: host jobs run, jobs with an image and images: builds will fail"
        );
        return Ok(None);
    }
    // Inside, euid is 0: name the home the user would get, not root's.
    let home = crate::home::drydock_home();
    let env = [(OsString::from("DRYDOCK_HOME"), home.into_os_string())];
    let code = drydock_sandbox::userns::reexec_in_user_namespace(what, &env)?;
    Ok(Some(ExitCode::from(code.clamp(0, 255) as u8)))
}

static REEXECUTED: AtomicBool = AtomicBool::new(false);

/// Whether this process is the one [`enter_or_reexec`] re-ran inside a user namespace: its
/// parent outside passes SIGINT, SIGTERM, SIGQUIT and SIGHUP on, so a Ctrl-C in a terminal
/// reaches it twice (from the terminal and from the parent).
pub fn reexecuted() -> bool {
    REEXECUTED.load(Ordering::Relaxed)
}

/// The commands that write or delete files owned by the image's users (a pipeline run extracts
/// images for its jobs and builds its `images:`; a server runs pipelines).
fn needs_user_namespace(args: impl IntoIterator<Item = OsString>) -> Option<&'static str> {
    let m = Cli::command().try_get_matches_from(args).ok()?;
    let flag = |m: &clap::ArgMatches, id: &str| {
        m.try_get_one::<bool>(id)
            .ok()
            .flatten()
            .copied()
            .unwrap_or(false)
    };
    match m.subcommand()? {
        ("build", b) if !flag(b, "check") => Some("drydock build"),
        ("builder", b) if b.subcommand_name() == Some("prune") => Some("drydock builder prune"),
        ("run", _) => Some("drydock run"),
        // `--rotate-key` only rewrites the database, but inside it is written as the user
        // too, so it needs no exception.
        ("serve", _) => Some("drydock serve"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(args: &[&str]) -> Option<&'static str> {
        needs_user_namespace(args.iter().map(OsString::from))
    }

    #[test]
    fn builds_prunes_runs_and_servers_need_the_namespace_checks_and_reads_do_not() {
        assert_eq!(needs(&["drydock", "build", "."]), Some("drydock build"));
        assert_eq!(
            needs(&["drydock", "build", "-t", "x", "--progress=plain", "ctx"]),
            Some("drydock build")
        );
        assert_eq!(needs(&["drydock", "build", "--check", "."]), None);
        assert_eq!(
            needs(&["drydock", "builder", "prune", "--all"]),
            Some("drydock builder prune")
        );
        assert_eq!(needs(&["drydock", "builder", "du"]), None);
        assert_eq!(needs(&["drydock", "run"]), Some("drydock run"));
        assert_eq!(
            needs(&["drydock", "run", "../svc", "--job", "test", "--json"]),
            Some("drydock run")
        );
        assert_eq!(needs(&["drydock", "run", "--help"]), None);
        assert_eq!(needs(&["drydock", "runs"]), None);
        assert_eq!(needs(&["drydock", "logs", "1"]), None);
        assert_eq!(needs(&["drydock", "serve"]), Some("drydock serve"));
        assert_eq!(
            needs(&[
                "drydock",
                "serve",
                "--listen",
                "0.0.0.0:8080",
                "--jobs",
                "2"
            ]),
            Some("drydock serve")
        );
        assert_eq!(
            needs(&["drydock", "serve", "--rotate-key"]),
            Some("drydock serve")
        );
        assert_eq!(needs(&["drydock", "serve", "--help"]), None);
        assert_eq!(needs(&["drydock", "serve", "--no-such-flag"]), None);
        assert_eq!(needs(&["drydock", "images"]), None);
        assert_eq!(needs(&["drydock", "build", "--no-such-flag"]), None);
    }
}
