//! `drydock build --progress tty` with the real binary: the BuildKit-style view is drawn in
//! place (cursor movement, cleared lines), its final frame lists every step with its time and
//! a finished count, and a failure's report (output tail, caret) follows the final frame.
//! The mode is forced by the flag, so standard error can be a pipe.

mod common;

use std::path::Path;

struct Home(tempfile::TempDir);

impl Home {
    fn new(what: &str) -> Option<Home> {
        if !drydock_testkit::require_root(what) {
            return None;
        }
        Some(Home(
            tempfile::Builder::new()
                .prefix("drydock-cli-build-progress-")
                .tempdir_in("/var/tmp")
                .unwrap(),
        ))
    }

    fn run(&self, dir: &Path, args: &[&str]) -> (i32, String) {
        let out = common::drydock(self.0.path())
            .current_dir(dir)
            .env("COLUMNS", "80")
            .env_remove("NO_COLOR")
            .args(args)
            .output()
            .unwrap();
        let (code, _, stderr) = common::outcome(&out);
        (code, stderr)
    }
}

/// The text without escape sequences and carriage returns, as a terminal would show it line
/// by line.
fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// The last frame: from the last header to the end of its step lines.
fn final_frame(text: &str) -> Vec<String> {
    let start = text.rfind("[+] Building").expect("a header");
    text[start..]
        .lines()
        .take_while(|l| l.starts_with("[+] Building") || l.starts_with(" => "))
        .map(str::to_string)
        .collect()
}

#[test]
fn tty_progress_draws_a_final_frame_with_every_step_and_cache_hits() {
    let Some(h) = Home::new("drydock build --progress tty") else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b/\n",
    )
    .unwrap();
    std::fs::write(ctx.path().join("a.txt"), "a\n").unwrap();
    std::fs::write(ctx.path().join("b.txt"), "b\n").unwrap();

    let (code, raw) = h.run(
        ctx.path(),
        &["build", "--progress", "tty", "-t", "p:1", "."],
    );
    assert_eq!(code, 0, "{raw}");
    // Drawn in place, colored.
    assert!(raw.contains("\x1b[2K"), "{raw:?}");
    assert!(raw.contains("\x1b[34m => ["), "{raw:?}");
    let text = plain(&raw);
    let frame = final_frame(&text);
    assert_eq!(frame.len(), 4, "{text}");
    assert!(frame[0].starts_with("[+] Building "), "{text}");
    assert!(frame[0].ends_with(" (3/3) FINISHED"), "{text}");
    // Step names as the builder gives them (`[stage-0 2/3]` or `[2/3]`).
    assert!(frame[1].starts_with(" => ["), "{text}");
    assert!(frame[1].contains("2/3] COPY a.txt /a.txt "), "{text}");
    assert!(frame[2].starts_with(" => ["), "{text}");
    assert!(frame[2].contains("3/3] COPY b.txt /b/ "), "{text}");
    assert!(frame[3].starts_with(" => exporting "), "{text}");
    for l in &frame[1..] {
        // Right-aligned times at column 80.
        assert_eq!(l.chars().count(), 80, "{l:?}");
        assert!(l.ends_with('s'), "{l:?}");
    }
    // The summary follows the frame; the old line-by-line tty output is gone.
    assert!(text.contains("\nbuilt sha256:"), "{text}");
    assert!(!text.contains("=> DONE"), "{text}");

    // Again: cache hits.
    let (code, raw) = h.run(ctx.path(), &["build", "--progress=tty", "-t", "p:1", "."]);
    assert_eq!(code, 0, "{raw}");
    let text = plain(&raw);
    let frame = final_frame(&text);
    assert!(frame[0].ends_with(" (3/3) FINISHED"), "{text}");
    assert!(frame[1].starts_with(" => CACHED ["), "{text}");
    assert!(frame[1].contains("2/3] COPY a.txt /a.txt "), "{text}");
    assert!(frame[2].starts_with(" => CACHED ["), "{text}");
    assert!(frame[2].contains("3/3] COPY b.txt /b/ "), "{text}");
}

#[test]
fn tty_progress_failure_prints_the_error_report_after_the_final_frame() {
    let Some(h) = Home::new("drydock build --progress tty (sandbox)") else {
        return;
    };
    if drydock_testkit::require_tool("/bin/busybox", "busybox-static").is_none() {
        return;
    }
    let (code, err) = h.run(Path::new("/"), &["kit", "busybox"]);
    assert_eq!(code, 0, "{err}");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\n\nRUN echo preparing && echo broken >&2 && false\n",
    )
    .unwrap();
    let (code, raw) = h.run(ctx.path(), &["build", "--progress", "tty", "."]);
    assert_eq!(code, 1, "{raw}");
    let text = plain(&raw);
    let frame = final_frame(&text);
    assert!(frame[0].ends_with(" FAILED"), "{text}");
    assert!(
        frame
            .iter()
            .any(|l| l.starts_with(" => ERROR [") && l.contains("2/2] RUN echo preparing")),
        "{text}"
    );
    // The failing step's output is not left in the frame; the report after it has it.
    assert!(frame.iter().all(|l| !l.starts_with(" => => #")), "{text}");
    let after = &text[text.rfind("[+] Building").unwrap()..];
    let tail = after
        .find(" > broken")
        .expect("the output tail after the frame");
    let caret = after.find("^^^").expect("the caret after the frame");
    assert!(tail < caret, "{text}");
    assert!(after.contains("Dockerfile:3"), "{text}");
    assert!(after.contains("exit code 1"), "{text}");
}

#[test]
fn tty_progress_prints_the_warnings_once_after_the_final_frame() {
    let Some(h) = Home::new("drydock build --progress tty") else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY a.txt /a.txt\nCMD echo hi\n",
    )
    .unwrap();
    std::fs::write(ctx.path().join("a.txt"), "a\n").unwrap();
    let (code, raw) = h.run(ctx.path(), &["build", "--progress", "tty", "."]);
    assert_eq!(code, 0, "{raw}");
    let text = plain(&raw);
    assert_eq!(text.matches("JSONArgsRecommended").count(), 1, "{text}");
    let frame_end = text.rfind("FINISHED").expect("a final frame");
    let found = text.find("1 warning found:").expect("the warnings header");
    assert!(frame_end < found, "{text}");
    assert!(found < text.find("JSONArgsRecommended").unwrap(), "{text}");
    assert!(found < text.find("\nbuilt sha256:").unwrap(), "{text}");
}
