//! The live terminal view of `drydock build --progress tty`, drawn like BuildKit's:
//!
//! ```text
//! [+] Building 4.2s (3/4)
//!  => CACHED [stage-0 2/4] COPY go.mod /src/                                    0.0s
//!  => [stage-0 3/4] RUN go build ./...                                          3.1s
//!  => => # compiling net/http
//! ```
//!
//! A header with the build's time and (finished/known) steps, then one line per step in the
//! order they were first reported, each with its time right-aligned, and under each running
//! step the last lines of its output. Builder messages ("pulling ...", "exporting ...") are shown
//! as steps too (BuildKit shows its own work as vertices); one runs until the next message or
//! step event.
//!
//! This module is pure: events and times go in ([`TtyView::apply`] takes the time since the build
//! started, it never reads a clock), lines come out ([`TtyView::render`]). The driver that moves
//! the cursor and redraws lives in `commands/build.rs`.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::Duration;

use drydock_builder::Event;

/// Output lines kept (and shown) under a running step, as BuildKit does.
pub const TAIL_LINES: usize = 6;
/// A line that never ends is cut here, so a chatty step cannot grow memory without bound.
const MAX_LINE_CHARS: usize = 4096;

const BLUE: &str = "\x1b[34m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Done,
    Cached,
    Failed,
    /// Still running when the build failed elsewhere.
    Canceled,
}

/// Where a vertex came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Step,
    Message,
}

#[derive(Debug)]
struct Vertex {
    kind: Kind,
    name: String,
    status: Status,
    started: Duration,
    /// How long it took, once it is no longer running (the builder's own measure for steps).
    took: Option<Duration>,
    tail: Tail,
}

/// The last lines of a step's output, fed chunk by chunk.
#[derive(Debug, Default)]
struct Tail {
    lines: VecDeque<String>,
    /// The line being written (no newline yet).
    current: String,
    /// A carriage return was seen: the next character starts `current` over.
    restart: bool,
    /// An incomplete UTF-8 sequence at the end of the last chunk.
    utf8: Vec<u8>,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        let mut bytes = std::mem::take(&mut self.utf8);
        bytes.extend_from_slice(data);
        let mut rest = &bytes[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    self.push_str(s);
                    return;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    self.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            self.push_str("\u{FFFD}");
                            rest = &after[n..];
                        }
                        None => {
                            self.utf8 = after.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    fn push_str(&mut self, s: &str) {
        for c in s.chars() {
            match c {
                '\n' => {
                    let line = std::mem::take(&mut self.current);
                    self.lines.push_back(line);
                    if self.lines.len() > TAIL_LINES {
                        self.lines.pop_front();
                    }
                    self.restart = false;
                }
                // `\r\n` ends the line as it is; `\r` then text overwrites it (progress bars).
                '\r' => self.restart = true,
                c => {
                    if self.restart {
                        self.current.clear();
                        self.restart = false;
                    }
                    if self.current.len() < MAX_LINE_CHARS {
                        self.current.push(c);
                    }
                }
            }
        }
    }

    /// The last `n` lines, the unfinished one included.
    fn last(&self, n: usize) -> Vec<&str> {
        let mut all: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        if !self.current.is_empty() {
            all.push(&self.current);
        }
        let skip = all.len().saturating_sub(n);
        all.split_off(skip)
    }
}

/// The state of a build's terminal view; see the module docs.
#[derive(Debug, Default)]
pub struct TtyView {
    vertices: Vec<Vertex>,
    /// Step id -> index in `vertices`.
    steps: HashMap<usize, usize>,
    warnings: Vec<String>,
    /// When the build ended, and whether it succeeded.
    finished: Option<(Duration, bool)>,
}

impl TtyView {
    pub fn new() -> TtyView {
        TtyView::default()
    }

    /// Takes one builder event; `now` is the time since the build started.
    pub fn apply(&mut self, event: &Event, now: Duration) {
        match event {
            Event::Message(m) => {
                self.end_messages(now);
                self.vertices.push(Vertex {
                    kind: Kind::Message,
                    name: m.clone(),
                    status: Status::Running,
                    started: now,
                    took: None,
                    tail: Tail::default(),
                });
            }
            Event::Started(s) => {
                self.end_messages(now);
                let v = self.step(s.id, &s.name, now);
                v.status = Status::Running;
                v.started = now;
            }
            Event::Cached(s) => {
                self.end_messages(now);
                let v = self.step(s.id, &s.name, now);
                v.status = Status::Cached;
                v.took = Some(Duration::ZERO);
            }
            Event::Done(s, d) => {
                let v = self.step(s.id, &s.name, now);
                v.status = Status::Done;
                v.took = Some(*d);
            }
            Event::Failed(s, d) => {
                let v = self.step(s.id, &s.name, now);
                v.status = Status::Failed;
                v.took = Some(*d);
            }
            Event::Log { step, data, .. } => {
                if let Some(&i) = self.steps.get(step) {
                    self.vertices[i].tail.push(data);
                }
            }
            Event::Warning(w) => self.warnings.push(w.clone()),
        }
    }

    /// The build ended at `now`: what still runs is done (`ok`) or canceled. When the build
    /// failed and no step did, the message that was running is what failed (a pull, a push).
    pub fn finish(&mut self, now: Duration, ok: bool) {
        let step_failed = self.vertices.iter().any(|v| v.status == Status::Failed);
        for v in &mut self.vertices {
            if v.status != Status::Running {
                continue;
            }
            v.took = Some(now.saturating_sub(v.started));
            v.status = match (ok, v.kind) {
                (true, _) => Status::Done,
                (false, Kind::Message) if !step_failed => Status::Failed,
                (false, _) => Status::Canceled,
            };
        }
        self.finished = Some((now, ok));
    }

    /// The warnings seen, to print once after the final frame.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The frame at `now`: every line at most `width` columns, ANSI colors only when `color`.
    pub fn render(&self, now: Duration, width: usize, color: bool) -> Vec<String> {
        self.render_fit(now, width, usize::MAX, color)
    }

    /// [`TtyView::render`] in at most `height` lines (at least the header): finished steps are
    /// left out first (oldest first), then the output under running steps shrinks, then the
    /// oldest remaining steps go.
    pub fn render_fit(
        &self,
        now: Duration,
        width: usize,
        height: usize,
        color: bool,
    ) -> Vec<String> {
        let budget = height.saturating_sub(1);
        let mut shown: Vec<bool> = vec![true; self.vertices.len()];
        let mut tail = TAIL_LINES;
        let lines = |shown: &[bool], tail: usize| -> usize {
            self.vertices
                .iter()
                .zip(shown)
                .filter(|(_, s)| **s)
                .map(|(v, _)| 1 + self.tail_of(v, tail).len())
                .sum()
        };
        for (i, v) in self.vertices.iter().enumerate() {
            if lines(&shown, tail) <= budget {
                break;
            }
            if matches!(v.status, Status::Done | Status::Cached) {
                shown[i] = false;
            }
        }
        while tail > 0 && lines(&shown, tail) > budget {
            tail -= 1;
        }
        for i in 0..self.vertices.len() {
            if lines(&shown, tail) <= budget {
                break;
            }
            shown[i] = false;
        }

        let mut out = vec![self.header(now, width)];
        for (v, _) in self.vertices.iter().zip(&shown).filter(|(_, s)| **s) {
            let line = step_line(v, now, width);
            out.push(paint(line, color, step_color(v.status)));
            for l in self.tail_of(v, tail) {
                let line = fit(&format!(" => => # {}", sanitize(l)), width).0;
                out.push(paint(line, color, Some(DIM)));
            }
        }
        out
    }

    fn header(&self, now: Duration, width: usize) -> String {
        let done = self
            .vertices
            .iter()
            .filter(|v| matches!(v.status, Status::Done | Status::Cached))
            .count();
        let (t, end) = match self.finished {
            Some((t, true)) => (t, " FINISHED"),
            Some((t, false)) => (t, " FAILED"),
            None => (now, ""),
        };
        let mut h = String::new();
        let _ = write!(
            h,
            "[+] Building {:.1}s ({done}/{}){end}",
            t.as_secs_f64(),
            self.vertices.len()
        );
        fit(&h, width).0
    }

    fn tail_of<'a>(&self, v: &'a Vertex, n: usize) -> Vec<&'a str> {
        if v.status == Status::Running && self.finished.is_none() {
            v.tail.last(n)
        } else {
            Vec::new()
        }
    }

    /// The vertex for step `id`, made (in first-seen order) when new.
    fn step(&mut self, id: usize, name: &str, now: Duration) -> &mut Vertex {
        let i = *self.steps.entry(id).or_insert_with(|| {
            self.vertices.push(Vertex {
                kind: Kind::Step,
                name: name.to_string(),
                status: Status::Running,
                started: now,
                took: None,
                tail: Tail::default(),
            });
            self.vertices.len() - 1
        });
        &mut self.vertices[i]
    }

    /// A message runs until the next message or step event.
    fn end_messages(&mut self, now: Duration) {
        for v in &mut self.vertices {
            if v.kind == Kind::Message && v.status == Status::Running {
                v.status = Status::Done;
                v.took = Some(now.saturating_sub(v.started));
            }
        }
    }
}

fn step_color(s: Status) -> Option<&'static str> {
    match s {
        Status::Running => None,
        Status::Done | Status::Cached => Some(BLUE),
        Status::Failed => Some(RED),
        Status::Canceled => Some(YELLOW),
    }
}

fn paint(line: String, color: bool, code: Option<&str>) -> String {
    match code {
        Some(code) if color => format!("{code}{line}{RESET}"),
        _ => line,
    }
}

/// ` => [LABEL ]NAME   TIME` with the time flush with column `width`.
fn step_line(v: &Vertex, now: Duration, width: usize) -> String {
    let label = match v.status {
        Status::Running | Status::Done => "",
        Status::Cached => "CACHED ",
        Status::Failed => "ERROR ",
        Status::Canceled => "CANCELED ",
    };
    let took = v.took.unwrap_or_else(|| now.saturating_sub(v.started));
    let time = format!("{:.1}s", took.as_secs_f64());
    let text = format!(" => {label}{}", sanitize(&v.name));
    if width < time.len() + 2 {
        return fit(&text, width).0;
    }
    let (text, used) = fit(&text, width - time.len() - 1);
    let pad = width - time.len() - used;
    format!("{text}{:pad$}{time}", "")
}

/// The longest prefix of `s` that fits in `width` columns, and its width.
fn fit(s: &str, width: usize) -> (String, usize) {
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w > width {
            break;
        }
        out.push(c);
        used += w;
    }
    (out, used)
}

/// Text as it may be drawn on one line: escape sequences and control characters dropped, tabs
/// expanded, line breaks (a heredoc in a step's name) shown as spaces.
fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut col = 0;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters, then a final byte in 0x40..=0x7e.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC and other strings: up to BEL or ESC \.
                Some(']' | 'P' | '_' | '^') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' {
                            break;
                        }
                        if c == '\x1b' {
                            chars.next_if_eq(&'\\');
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => {
                let n = 8 - col % 8;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            '\n' | '\r' => {
                out.push(' ');
                col += 1;
            }
            c if c.is_control() => {}
            c => {
                out.push(c);
                col += char_width(c);
            }
        }
    }
    out
}

/// Columns a character takes on a terminal: 2 for East Asian wide characters and emoji, 0 for
/// combining marks and zero-width characters, else 1 (an approximation of wcwidth).
fn char_width(c: char) -> usize {
    match c as u32 {
        0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// The width of a line as drawn (escape sequences take no room).
#[cfg(test)]
fn columns(s: &str) -> usize {
    sanitize(s).chars().map(char_width).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drydock_builder::{StepInfo, Stream};

    fn info(id: usize, name: &str) -> StepInfo {
        StepInfo {
            id,
            name: name.to_string(),
            stage: Some("stage-0".to_string()),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn log(step: usize, data: &[u8]) -> Event {
        Event::Log {
            step,
            stream: Stream::Stdout,
            data: data.to_vec(),
        }
    }

    fn frame(v: &TtyView, now: Duration, width: usize) -> String {
        v.render(now, width, false).join("\n")
    }

    /// A build of four steps: two cached, one done, one running with output.
    fn running_build() -> TtyView {
        let mut v = TtyView::new();
        v.apply(
            &Event::Message("pulling busybox for linux/amd64".into()),
            ms(0),
        );
        v.apply(
            &Event::Cached(info(1, "[stage-0 1/4] FROM busybox")),
            ms(400),
        );
        v.apply(&Event::Cached(info(2, "[stage-0 2/4] COPY f /f")), ms(400));
        v.apply(&Event::Started(info(3, "[stage-0 3/4] RUN make")), ms(500));
        v.apply(&log(3, b"cc -c a.c\ncc -c b"), ms(600));
        v.apply(&log(3, b".c\n"), ms(700));
        v
    }

    #[test]
    fn cached_steps_and_a_running_step_with_its_output() {
        let v = running_build();
        insta::assert_snapshot!(frame(&v, ms(2_000), 72), @r"
        [+] Building 2.0s (3/4)
         => pulling busybox for linux/amd64                                 0.4s
         => CACHED [stage-0 1/4] FROM busybox                               0.0s
         => CACHED [stage-0 2/4] COPY f /f                                  0.0s
         => [stage-0 3/4] RUN make                                          1.5s
         => => # cc -c a.c
         => => # cc -c b.c
        ");
    }

    #[test]
    fn a_finished_step_drops_its_output_and_the_final_frame_has_every_step() {
        let mut v = running_build();
        v.apply(
            &Event::Done(info(3, "[stage-0 3/4] RUN make"), ms(2_345)),
            ms(2_845),
        );
        v.apply(
            &Event::Started(info(4, "[stage-0 4/4] RUN make install")),
            ms(2_900),
        );
        v.apply(
            &Event::Done(info(4, "[stage-0 4/4] RUN make install"), ms(100)),
            ms(3_000),
        );
        v.apply(&Event::Message("exporting linux/amd64".into()), ms(3_000));
        let live = frame(&v, ms(3_100), 72);
        assert!(live.contains("(5/6)\n"), "{live}");
        assert!(!live.contains("FINISHED"), "{live}");
        v.finish(ms(3_260), true);
        insta::assert_snapshot!(frame(&v, ms(9_999), 72), @r"
        [+] Building 3.3s (6/6) FINISHED
         => pulling busybox for linux/amd64                                 0.4s
         => CACHED [stage-0 1/4] FROM busybox                               0.0s
         => CACHED [stage-0 2/4] COPY f /f                                  0.0s
         => [stage-0 3/4] RUN make                                          2.3s
         => [stage-0 4/4] RUN make install                                  0.1s
         => exporting linux/amd64                                           0.3s
        ");
    }

    #[test]
    fn split_chunks_carriage_returns_and_only_the_last_six_lines() {
        let mut v = TtyView::new();
        v.apply(&Event::Started(info(1, "[stage-0 2/2] RUN ./fetch")), ms(0));
        for i in 1..=7 {
            v.apply(&log(1, format!("line {i}\n").as_bytes()), ms(10));
        }
        // A progress bar redrawn with \r, split across chunks; CRLF keeps its line.
        v.apply(&log(1, b"windows\r\n"), ms(20));
        v.apply(&log(1, b"downloading  10%\r"), ms(30));
        v.apply(&log(1, b"downloading  55%\rdownl"), ms(40));
        v.apply(&log(1, b"oading  90%"), ms(50));
        // A UTF-8 character split between chunks, a tab, and escape sequences.
        let mut v2 = TtyView::new();
        v2.apply(&Event::Started(info(1, "[stage-0 2/2] RUN ./fetch")), ms(0));
        v2.apply(&log(1, b"caf\xc3"), ms(10));
        v2.apply(
            &log(1, b"\xa9\tok \x1b[1;32mgreen\x1b[0m \x1b]0;title\x07done\n"),
            ms(20),
        );
        v2.apply(&log(1, b"bad \xff byte\n"), ms(20));
        insta::assert_snapshot!(frame(&v, ms(1_000), 60), @r"
        [+] Building 1.0s (0/1)
         => [stage-0 2/2] RUN ./fetch                           1.0s
         => => # line 4
         => => # line 5
         => => # line 6
         => => # line 7
         => => # windows
         => => # downloading  90%
        ");
        insta::assert_snapshot!(frame(&v2, ms(1_000), 60), @r"
        [+] Building 1.0s (0/1)
         => [stage-0 2/2] RUN ./fetch                           1.0s
         => => # café    ok green done
         => => # bad � byte
        ");
    }

    #[test]
    fn a_failed_step_shows_error_and_cancels_the_running_ones() {
        let mut v = TtyView::new();
        v.apply(&Event::Cached(info(1, "[base 1/2] FROM alpine")), ms(100));
        v.apply(
            &Event::Started(info(2, "[base 2/2] RUN apk add gcc")),
            ms(200),
        );
        v.apply(&Event::Started(info(3, "[stage-1 2/3] RUN false")), ms(200));
        v.apply(&log(3, b"broken\n"), ms(250));
        v.apply(&log(2, b"fetch https://dl-cdn.alpinelinux.org\n"), ms(260));
        v.apply(
            &Event::Failed(info(3, "[stage-1 2/3] RUN false"), ms(300)),
            ms(500),
        );
        let live = frame(&v, ms(600), 72);
        // The failed step's output is not in the frame (the error report prints it).
        assert!(!live.contains("broken"), "{live}");
        assert!(live.contains("=> => # fetch https://dl-cdn"), "{live}");
        v.finish(ms(700), false);
        insta::assert_snapshot!(frame(&v, ms(700), 72), @r"
        [+] Building 0.7s (1/3) FAILED
         => CACHED [base 1/2] FROM alpine                                   0.0s
         => CANCELED [base 2/2] RUN apk add gcc                             0.5s
         => ERROR [stage-1 2/3] RUN false                                   0.3s
        ");
    }

    #[test]
    fn a_failed_pull_is_the_message_that_was_running() {
        let mut v = TtyView::new();
        v.apply(
            &Event::Message("pulling nosuch:1 for linux/amd64".into()),
            ms(0),
        );
        v.finish(ms(1_200), false);
        insta::assert_snapshot!(frame(&v, ms(1_200), 60), @r"
        [+] Building 1.2s (0/1) FAILED
         => ERROR pulling nosuch:1 for linux/amd64              1.2s
        ");
    }

    #[test]
    fn long_lines_are_cut_to_the_width_keeping_the_time() {
        let mut v = TtyView::new();
        let name = "[stage-0 2/2] RUN apt-get update && apt-get install -y --no-install-recommends build-essential";
        v.apply(&Event::Started(info(1, name)), ms(0));
        v.apply(
            &log(
                1,
                "Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB] 日本語テキスト"
                    .as_bytes(),
            ),
            ms(0),
        );
        let f = v.render(ms(12_345), 40, false);
        insta::assert_snapshot!(f.join("\n"), @r"
        [+] Building 12.3s (0/1)
         => [stage-0 2/2] RUN apt-get upda 12.3s
         => => # Get:1 http://deb.debian.org/deb
        ");
        for l in &f {
            assert!(columns(l) <= 40, "{l:?}");
        }
        // Wide characters take two columns: the prefix's 9 and four of them fill 17.
        let mut w = TtyView::new();
        w.apply(&Event::Started(info(1, "x")), ms(0));
        w.apply(&log(1, "日本語テキスト".as_bytes()), ms(0));
        let f = w.render(ms(0), 17, false);
        assert_eq!(f[2], " => => # 日本語テ");
        assert!(f.iter().all(|l| columns(l) <= 17), "{f:?}");
    }

    #[test]
    fn a_frame_taller_than_the_terminal_leaves_out_finished_steps_first() {
        let mut v = TtyView::new();
        for i in 1..=8 {
            v.apply(
                &Event::Cached(info(i, &format!("[stage-0 {i}/10] RUN step {i}"))),
                ms(100),
            );
        }
        v.apply(&Event::Started(info(9, "[stage-0 9/10] RUN make")), ms(200));
        v.apply(&log(9, b"one\ntwo\nthree\n"), ms(300));
        v.apply(
            &Event::Started(info(10, "[other 2/2] RUN sleep 5")),
            ms(200),
        );
        let full = v.render(ms(1_000), 60, false);
        assert_eq!(full.len(), 1 + 10 + 3);
        insta::assert_snapshot!(v.render_fit(ms(1_000), 60, 8, false).join("\n"), @r"
        [+] Building 1.0s (8/10)
         => CACHED [stage-0 7/10] RUN step 7                    0.0s
         => CACHED [stage-0 8/10] RUN step 8                    0.0s
         => [stage-0 9/10] RUN make                             0.8s
         => => # one
         => => # two
         => => # three
         => [other 2/2] RUN sleep 5                             0.8s
        ");
        // Shorter still: the output shrinks, then only the running steps are left.
        insta::assert_snapshot!(v.render_fit(ms(1_000), 60, 4, false).join("\n"), @r"
        [+] Building 1.0s (8/10)
         => [stage-0 9/10] RUN make                             0.8s
         => => # three
         => [other 2/2] RUN sleep 5                             0.8s
        ");
        assert_eq!(v.render_fit(ms(1_000), 60, 1, false).len(), 1);
    }

    #[test]
    fn warnings_are_kept_for_the_end_and_not_drawn_in_the_frame() {
        let mut v = running_build();
        v.apply(
            &Event::Warning("warning: JSONArgsRecommended\n --> Dockerfile:3\n".into()),
            ms(50),
        );
        assert_eq!(
            v.warnings(),
            ["warning: JSONArgsRecommended\n --> Dockerfile:3\n"]
        );
        assert!(!frame(&v, ms(100), 80).contains("JSONArgs"));
    }

    #[test]
    fn colors_only_when_asked() {
        let mut v = running_build();
        v.apply(&Event::Started(info(4, "[stage-0 4/4] RUN false")), ms(800));
        v.apply(
            &Event::Failed(info(4, "[stage-0 4/4] RUN false"), ms(100)),
            ms(900),
        );
        let colored = v.render(ms(1_000), 80, true);
        assert!(
            colored[2].starts_with("\x1b[34m => CACHED [stage-0 1/4]"),
            "{colored:?}"
        );
        assert!(colored[2].ends_with("0.0s\x1b[0m"), "{colored:?}");
        assert!(
            colored[4].starts_with(" => [stage-0 3/4] RUN make"),
            "{colored:?}"
        );
        assert!(
            colored[5].starts_with("\x1b[2m => => # cc -c a.c"),
            "{colored:?}"
        );
        assert!(
            colored[7].starts_with("\x1b[31m => ERROR [stage-0 4/4]"),
            "{colored:?}"
        );
        let plain = v.render(ms(1_000), 80, false);
        assert!(plain.iter().all(|l| !l.contains('\x1b')), "{plain:?}");
        // Colors take no columns.
        assert!(colored.iter().all(|l| columns(l) <= 80), "{colored:?}");
        assert_eq!(columns(&colored[2]), 80);
    }
}
