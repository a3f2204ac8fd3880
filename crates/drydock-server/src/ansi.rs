//! ANSI colours (SGR escape sequences) to HTML spans; every other escape sequence is dropped
//! and the text is escaped.

use crate::util::esc;

const COLOURS: [&str; 8] = [
    "#4d4d4d", "#cd3131", "#0dbc79", "#c9a500", "#2472c8", "#bc3fbc", "#11a8cd", "#d0d0d0",
];
const BRIGHT: [&str; 8] = [
    "#767676", "#f14c4c", "#23d18b", "#e5e510", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
];

#[derive(Default, Clone, PartialEq)]
struct Style {
    fg: Option<String>,
    bg: Option<String>,
    bold: bool,
    italic: bool,
    underline: bool,
}

impl Style {
    fn css(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.fg {
            s.push_str(&format!("color:{c};"));
        }
        if let Some(c) = &self.bg {
            s.push_str(&format!("background:{c};"));
        }
        if self.bold {
            s.push_str("font-weight:bold;");
        }
        if self.italic {
            s.push_str("font-style:italic;");
        }
        if self.underline {
            s.push_str("text-decoration:underline;");
        }
        s
    }

    fn apply(&mut self, params: &[u32]) {
        let mut i = 0;
        if params.is_empty() {
            *self = Style::default();
        }
        while i < params.len() {
            let p = params[i];
            match p {
                0 => *self = Style::default(),
                1 => self.bold = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => self.bold = false,
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Some(COLOURS[(p - 30) as usize].into()),
                39 => self.fg = None,
                40..=47 => self.bg = Some(COLOURS[(p - 40) as usize].into()),
                49 => self.bg = None,
                90..=97 => self.fg = Some(BRIGHT[(p - 90) as usize].into()),
                100..=107 => self.bg = Some(BRIGHT[(p - 100) as usize].into()),
                38 | 48 => {
                    let colour = match params.get(i + 1) {
                        Some(5) => {
                            let n = params.get(i + 2).copied().unwrap_or(0);
                            i += 2;
                            Some(xterm256(n))
                        }
                        Some(2) => {
                            let (r, g, b) = (
                                params.get(i + 2).copied().unwrap_or(0),
                                params.get(i + 3).copied().unwrap_or(0),
                                params.get(i + 4).copied().unwrap_or(0),
                            );
                            i += 4;
                            Some(format!(
                                "#{:02x}{:02x}{:02x}",
                                r.min(255),
                                g.min(255),
                                b.min(255)
                            ))
                        }
                        _ => None,
                    };
                    if p == 38 {
                        self.fg = colour;
                    } else {
                        self.bg = colour;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
}

fn xterm256(n: u32) -> String {
    match n {
        0..=7 => COLOURS[n as usize].into(),
        8..=15 => BRIGHT[(n - 8) as usize].into(),
        16..=231 => {
            let n = n - 16;
            let c = |v: u32| if v == 0 { 0 } else { 55 + v * 40 };
            format!("#{:02x}{:02x}{:02x}", c(n / 36), c((n / 6) % 6), c(n % 6))
        }
        _ => {
            let v = 8 + (n.min(255) - 232) * 10;
            format!("#{v:02x}{v:02x}{v:02x}")
        }
    }
}

/// One log line as HTML.
pub fn to_html(line: &str) -> String {
    let mut out = String::new();
    let mut style = Style::default();
    let mut text = String::new();
    let mut open = false;
    let flush = |text: &mut String, out: &mut String, style: &Style, open: &mut bool| {
        if text.is_empty() {
            return;
        }
        let css = style.css();
        if css.is_empty() {
            out.push_str(&esc(text));
        } else {
            out.push_str(&format!("<span style=\"{css}\">{}</span>", esc(text)));
        }
        *open = false;
        text.clear();
    };
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            match chars.peek() {
                Some('[') => {
                    chars.next();
                    let mut seq = String::new();
                    let mut fin = None;
                    for d in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&d) {
                            fin = Some(d);
                            break;
                        }
                        seq.push(d);
                    }
                    if fin == Some('m') {
                        flush(&mut text, &mut out, &style, &mut open);
                        let params: Vec<u32> = if seq.is_empty() {
                            vec![]
                        } else {
                            seq.split(';').map(|p| p.parse().unwrap_or(0)).collect()
                        };
                        style.apply(&params);
                    }
                }
                Some(']') => {
                    // OSC: up to BEL or ST.
                    chars.next();
                    while let Some(d) = chars.next() {
                        if d == '\u{7}' {
                            break;
                        }
                        if d == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {
                    chars.next();
                }
            }
            continue;
        }
        if c == '\r' || (c.is_control() && c != '\t') {
            continue;
        }
        text.push(c);
    }
    flush(&mut text, &mut out, &style, &mut open);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_become_spans() {
        assert_eq!(
            to_html("\u{1b}[31mred\u{1b}[0m <b>"),
            "<span style=\"color:#cd3131;\">red</span> &lt;b&gt;"
        );
        assert_eq!(
            to_html("\u{1b}[1;32mok\u{1b}[m"),
            "<span style=\"color:#0dbc79;font-weight:bold;\">ok</span>"
        );
        assert_eq!(to_html("\u{1b}[2Kplain\u{1b}]0;title\u{7}"), "plain");
    }
}
