//! Helpers shared by the CLI's integration tests: the `drydock` binary with a home of the
//! test's own, and its exit code and output as text.
// Each test binary uses some of these.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The `drydock` binary built for these tests.
pub const DRYDOCK: &str = env!("CARGO_BIN_EXE_drydock");

/// `drydock` with `home` as its `DRYDOCK_HOME` and without an inherited `SOURCE_DATE_EPOCH`
/// (image timestamps come from the test's own flags or context, never from the environment).
pub fn drydock(home: &Path) -> Command {
    let mut c = Command::new(DRYDOCK);
    c.env("DRYDOCK_HOME", home).env_remove("SOURCE_DATE_EPOCH");
    c
}

/// A finished command's exit code (-1 when a signal ended it), stdout and stderr, decoded
/// lossily.
pub fn outcome(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
