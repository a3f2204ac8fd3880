//! Cron schedules: five fields (minute, hour, day of month, month, day of week) with `*`,
//! numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, month names `JAN`-`DEC`, day
//! names `SUN`-`SAT` (`0` and `7` are Sunday), and the macros `@yearly`, `@annually`,
//! `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`. When both day fields are
//! restricted, a day matching either runs (as in Vixie cron and GitHub Actions).
//!
//! [`Cron::next_after`] works in a fixed-offset [`TimeZone`]; the server reuses it.

use drydock_tags::time::{Civil, TimeZone, days_from_civil, days_in_month};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    pub minutes: u64,
    pub hours: u32,
    /// bit 1..=31
    pub days: u32,
    /// bit 1..=12
    pub months: u16,
    /// bit 0..=6 (Sunday = 0)
    pub weekdays: u8,
    dom_star: bool,
    dow_star: bool,
    pub text: String,
}

/// A cron error: message and byte range in the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    pub message: String,
    pub start: usize,
    pub end: usize,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let t = text.trim();
        let lead = text.len() - text.trim_start().len();
        let expanded = match t.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => Some("0 0 1 1 *"),
            "@monthly" => Some("0 0 1 * *"),
            "@weekly" => Some("0 0 * * 0"),
            "@daily" | "@midnight" => Some("0 0 * * *"),
            "@hourly" => Some("0 * * * *"),
            m if m.starts_with('@') => {
                return Err(CronError {
                    message: format!(
                        "unknown macro `{t}` (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)"
                    ),
                    start: lead,
                    end: lead + t.len(),
                });
            }
            _ => None,
        };
        let (src, base, whole) = match expanded {
            Some(e) => (e, None, (lead, lead + t.len())),
            None => (t, Some(lead), (lead, lead + t.len())),
        };
        let mut fields = Vec::new();
        let mut pos = 0;
        for part in src.split_ascii_whitespace() {
            let at = src[pos..].find(part).map_or(pos, |i| pos + i);
            fields.push((part, at));
            pos = at + part.len();
        }
        if fields.len() != 5 {
            return Err(CronError {
                message: format!(
                    "a cron expression has 5 fields (minute hour day-of-month month day-of-week), found {}",
                    fields.len()
                ),
                start: whole.0,
                end: whole.1,
            });
        }
        let span_of = |at: usize, len: usize| match base {
            Some(b) => (b + at, b + at + len),
            None => whole,
        };
        let specs: [(&str, u32, u32, &[&str]); 5] = [
            ("minute", 0, 59, &[]),
            ("hour", 0, 23, &[]),
            ("day of month", 1, 31, &[]),
            ("month", 1, 12, &MONTHS),
            ("day of week", 0, 7, &DAYS),
        ];
        let mut sets = [0u64; 5];
        for (k, ((field, at), (name, lo, hi, names))) in fields.iter().zip(specs).enumerate() {
            let name_base = if k == 3 { 1 } else { 0 };
            sets[k] = parse_field(field, lo, hi, names, name_base).map_err(|m| {
                let (s, e) = span_of(*at, field.len());
                CronError {
                    message: format!("{name} `{field}`: {m}"),
                    start: s,
                    end: e,
                }
            })?;
        }
        let mut weekdays = sets[4] as u8 & 0x7f;
        if sets[4] & (1 << 7) != 0 {
            weekdays |= 1;
        }
        let cron = Cron {
            minutes: sets[0],
            hours: sets[1] as u32,
            days: sets[2] as u32,
            months: sets[3] as u16,
            weekdays,
            // As in Vixie cron, a field that starts with `*` (also `*/2`) is unrestricted for
            // the either-day rule.
            dom_star: fields[2].0.starts_with('*'),
            dow_star: fields[4].0.starts_with('*'),
            text: t.to_string(),
        };
        // A schedule such as `0 0 30 2 *` never fires.
        if cron.next_after(0, TimeZone::UTC).is_none() {
            return Err(CronError {
                message: "this schedule never runs (no such date)".into(),
                start: whole.0,
                end: whole.1,
            });
        }
        Ok(cron)
    }

    fn day_matches(&self, c: &Civil) -> bool {
        let dom = self.days & (1 << c.day) != 0;
        let dow = self.weekdays & (1 << c.weekday) != 0;
        match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// Whether the schedule fires at the minute containing Unix time `t` in zone `tz`.
    pub fn matches(&self, t: i64, tz: TimeZone) -> bool {
        let c = tz.civil(t);
        self.minutes & (1 << c.minute) != 0
            && self.hours & (1 << c.hour) != 0
            && self.months & (1 << c.month) != 0
            && self.day_matches(&c)
    }

    /// The first time strictly after `t` (Unix seconds) at which the schedule fires, in zone
    /// `tz`; `None` when it never does within 28 years (a date that does not exist).
    pub fn next_after(&self, t: i64, tz: TimeZone) -> Option<i64> {
        let off = i64::from(tz.offset_seconds);
        // Work in local time, from the next whole minute.
        let local = t
            .checked_add(off)?
            .div_euclid(60)
            .checked_add(1)?
            .checked_mul(60)?;
        let start = tz_civil_utc(local);
        let mut day = days_from_civil(start.year, start.month, start.day);
        let first_day = day;
        for _ in 0..(366 * 28) {
            let (y, m, d) = drydock_tags::time::civil_from_days(day);
            if self.months & (1 << m) != 0 {
                let c = Civil {
                    year: y,
                    month: m,
                    day: d,
                    hour: 0,
                    minute: 0,
                    second: 0,
                    weekday: (day + 4).rem_euclid(7) as u32,
                    yday: 0,
                };
                if d <= days_in_month(y, m) && self.day_matches(&c) {
                    let (h0, m0) = if day == first_day {
                        (start.hour, start.minute)
                    } else {
                        (0, 0)
                    };
                    for h in h0..24 {
                        if self.hours & (1 << h) == 0 {
                            continue;
                        }
                        let mstart = if h == h0 { m0 } else { 0 };
                        for mi in mstart..60 {
                            if self.minutes & (1 << mi) != 0 {
                                let local_t =
                                    day * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60;
                                return local_t.checked_sub(off);
                            }
                        }
                    }
                }
            }
            day += 1;
        }
        None
    }
}

fn tz_civil_utc(t: i64) -> Civil {
    drydock_tags::time::to_civil(t)
}

fn parse_value(s: &str, lo: u32, hi: u32, names: &[&str], name_base: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + name_base);
    }
    let v: u32 = s.parse().map_err(|_| {
        if names.is_empty() {
            format!("`{s}` is not a number")
        } else {
            format!(
                "`{s}` is not a number or a name ({}-{})",
                names[0],
                names[names.len() - 1]
            )
        }
    })?;
    if v < lo || v > hi {
        return Err(format!("{v} is out of range {lo}-{hi}"));
    }
    Ok(v)
}

fn parse_field(
    field: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    name_base: u32,
) -> Result<u64, String> {
    let mut set = 0u64;
    for item in field.split(',') {
        if item.is_empty() {
            return Err("empty list item".into());
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let st: u32 = s
                    .parse()
                    .map_err(|_| format!("step `{s}` is not a number"))?;
                if st == 0 || st > hi {
                    return Err(format!("step {st} is out of range 1-{hi}"));
                }
                (r, Some(st))
            }
            None => (item, None),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((x, y)) = range.split_once('-') {
            let (a, b) = (
                parse_value(x, lo, hi, names, name_base)?,
                parse_value(y, lo, hi, names, name_base)?,
            );
            if a > b {
                return Err(format!("range {a}-{b} runs backwards"));
            }
            (a, b)
        } else {
            let a = parse_value(range, lo, hi, names, name_base)?;
            // `5/15` means from 5 to the end in steps of 15
            (a, if step.is_some() { hi } else { a })
        };
        let st = step.unwrap_or(1);
        let mut v = a;
        while v <= b {
            set |= 1 << v;
            v += st;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drydock_tags::time::{from_civil, to_civil};

    fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        from_civil(&Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: 0,
            weekday: 0,
            yday: 0,
        })
    }

    fn next(expr: &str, t: i64) -> (i64, u32, u32, u32, u32) {
        let n = Cron::parse(expr)
            .unwrap()
            .next_after(t, TimeZone::UTC)
            .unwrap();
        let c = to_civil(n);
        (c.year, c.month, c.day, c.hour, c.minute)
    }

    #[test]
    fn next_times() {
        let t = at(2024, 1, 10, 12, 34);
        assert_eq!(next("0 0 * * *", t), (2024, 1, 11, 0, 0));
        assert_eq!(next("@daily", t), (2024, 1, 11, 0, 0));
        assert_eq!(next("*/15 * * * *", t), (2024, 1, 10, 12, 45));
        assert_eq!(next("* * * * *", t), (2024, 1, 10, 12, 35));
        assert_eq!(next("30 12 * * *", t), (2024, 1, 11, 12, 30));
        assert_eq!(
            next("0 9 * * MON-FRI", at(2024, 1, 12, 10, 0)),
            (2024, 1, 15, 9, 0)
        ); // Fri -> Mon
        assert_eq!(next("0 0 29 FEB *", t), (2024, 2, 29, 0, 0));
        assert_eq!(
            next("0 0 29 2 *", at(2024, 3, 1, 0, 0)),
            (2028, 2, 29, 0, 0)
        );
        assert_eq!(next("0 0 1 * *", t), (2024, 2, 1, 0, 0));
        assert_eq!(next("@hourly", t), (2024, 1, 10, 13, 0));
        assert_eq!(next("0 0 * * 7", t), (2024, 1, 14, 0, 0)); // 7 = Sunday
        // both day fields restricted: either matches (the 13th, or any Friday)
        assert_eq!(next("0 0 13 * FRI", t), (2024, 1, 12, 0, 0));
        assert_eq!(next("5/20 * * * *", t), (2024, 1, 10, 12, 45));
        assert_eq!(next("0 0 1 JAN *", t), (2025, 1, 1, 0, 0));
    }

    #[test]
    fn time_zones_shift() {
        let tokyo = TimeZone::parse("+09:00").unwrap();
        let c = Cron::parse("0 9 * * *").unwrap();
        let n = c.next_after(at(2024, 1, 10, 12, 0), tokyo).unwrap();
        assert_eq!(n, at(2024, 1, 11, 0, 0)); // 09:00 in Tokyo is 00:00 UTC
        assert!(c.matches(n, tokyo));
    }

    #[test]
    fn errors() {
        for (bad, msg) in [
            ("0 0 * *", "5 fields"),
            ("60 * * * *", "out of range"),
            ("* 24 * * *", "out of range"),
            ("* * 0 * *", "out of range"),
            ("* * * 13 *", "out of range"),
            ("* * * * 8", "out of range"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("* * * FOO *", "not a number or a name"),
            ("0 0 30 2 *", "never runs"),
            ("@often", "unknown macro"),
            ("1,,2 * * * *", "empty"),
        ] {
            let e = Cron::parse(bad).unwrap_err();
            assert!(e.message.contains(msg), "{bad}: {}", e.message);
        }
        let e = Cron::parse("0 25 * * *").unwrap_err();
        assert_eq!((e.start, e.end), (2, 4));
    }
}
