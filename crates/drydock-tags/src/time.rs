//! Civil time without a clock or tz database: Unix seconds to dates (proleptic Gregorian, UTC),
//! fixed-offset time zones, RFC 3339 and moment.js-style formats.
//!
//! Time zones are fixed offsets. Names are accepted for `UTC`, `Etc/GMT±N` and zones that keep
//! one offset all year (`Asia/Tokyo`, `Asia/Kolkata`, ...); a zone with daylight saving time
//! would need the tz database, so it is refused with a hint to write the offset (`+01:00`).

/// A date and time of day (in some zone), plus the weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday .. 6 = Saturday
    pub weekday: u32,
    /// 1..=366
    pub yday: u32,
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (days since 1970-01-01).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// A fixed UTC offset, in seconds east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeZone {
    pub offset_seconds: i32,
}

/// Zones that keep a single offset all year (no daylight saving time), in minutes.
const FIXED_ZONES: &[(&str, i32)] = &[
    ("Africa/Johannesburg", 120),
    ("Africa/Lagos", 60),
    ("Africa/Nairobi", 180),
    ("America/Argentina/Buenos_Aires", -180),
    ("America/Bogota", -300),
    ("America/Lima", -300),
    ("America/Phoenix", -420),
    ("America/Sao_Paulo", -180),
    ("Asia/Bangkok", 420),
    ("Asia/Calcutta", 330),
    ("Asia/Dhaka", 360),
    ("Asia/Dubai", 240),
    ("Asia/Hong_Kong", 480),
    ("Asia/Jakarta", 420),
    ("Asia/Karachi", 300),
    ("Asia/Kathmandu", 345),
    ("Asia/Kolkata", 330),
    ("Asia/Manila", 480),
    ("Asia/Riyadh", 180),
    ("Asia/Seoul", 540),
    ("Asia/Shanghai", 480),
    ("Asia/Singapore", 480),
    ("Asia/Taipei", 480),
    ("Asia/Tokyo", 540),
    ("Australia/Brisbane", 600),
    ("Australia/Perth", 480),
    ("Europe/Istanbul", 180),
    ("Europe/Moscow", 180),
    ("Pacific/Honolulu", -600),
];

impl TimeZone {
    pub const UTC: TimeZone = TimeZone { offset_seconds: 0 };

    /// `UTC`, `GMT`, `Z`, `Etc/UTC`, `Etc/GMT-9` (POSIX sign: nine hours *east*), an offset
    /// `+09:00` / `-0530` / `+9`, `UTC+2`, or a zone without daylight saving time.
    pub fn parse(s: &str) -> Result<TimeZone, String> {
        let t = s.trim();
        if t.is_empty()
            || [
                "UTC",
                "GMT",
                "Z",
                "Etc/UTC",
                "Etc/GMT",
                "Etc/Zulu",
                "UCT",
                "Universal",
                "Zulu",
            ]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(t))
        {
            return Ok(TimeZone::UTC);
        }
        if let Some(rest) = t.strip_prefix("Etc/GMT") {
            let off = parse_offset(rest).ok_or_else(|| format!("invalid time zone '{s}'"))?;
            return Ok(TimeZone {
                offset_seconds: -off,
            });
        }
        for p in ["UTC", "GMT"] {
            if let Some(rest) = t.strip_prefix(p)
                && let Some(off) = parse_offset(rest)
            {
                return Ok(TimeZone {
                    offset_seconds: off,
                });
            }
        }
        if let Some(off) = parse_offset(t) {
            return Ok(TimeZone {
                offset_seconds: off,
            });
        }
        if let Some((_, m)) = FIXED_ZONES.iter().find(|(n, _)| n.eq_ignore_ascii_case(t)) {
            return Ok(TimeZone {
                offset_seconds: m * 60,
            });
        }
        Err(format!(
            "unknown time zone '{s}': drydock knows UTC, fixed offsets such as +09:00, and zones without daylight saving time (e.g. Asia/Tokyo); write the offset for other zones"
        ))
    }

    /// `+09:00`, `-05:30`, `+00:00`.
    pub fn offset_string(&self, colon: bool) -> String {
        let s = self.offset_seconds;
        let sign = if s < 0 { '-' } else { '+' };
        let a = s.unsigned_abs();
        let (h, m) = (a / 3600, (a % 3600) / 60);
        if colon {
            format!("{sign}{h:02}:{m:02}")
        } else {
            format!("{sign}{h:02}{m:02}")
        }
    }

    /// The civil date and time at Unix time `t` in this zone.
    pub fn civil(&self, t: i64) -> Civil {
        to_civil(t.saturating_add(i64::from(self.offset_seconds)))
    }
}

/// `+9`, `+09`, `+0900`, `+09:00`, `-5:30`; seconds east of UTC.
fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = if let Some((h, m)) = rest.split_once(':') {
        (h, m)
    } else if rest.len() == 4 {
        rest.split_at(2)
    } else {
        (rest, "0")
    };
    if h.is_empty() || h.len() > 2 || m.is_empty() || m.len() > 2 {
        return None;
    }
    if !h.bytes().chain(m.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// The civil time of Unix time `t` (seconds) in UTC.
pub fn to_civil(t: i64) -> Civil {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    let weekday = (days + 4).rem_euclid(7) as u32;
    let yday = (days - days_from_civil(year, 1, 1) + 1) as u32;
    Civil {
        year,
        month,
        day,
        hour: secs / 3600,
        minute: (secs % 3600) / 60,
        second: secs % 60,
        weekday,
        yday,
    }
}

/// Unix time of a civil time in UTC.
pub fn from_civil(c: &Civil) -> i64 {
    days_from_civil(c.year, c.month, c.day) * 86_400
        + i64::from(c.hour) * 3600
        + i64::from(c.minute) * 60
        + i64::from(c.second)
}

/// `2020-01-10T00:30:00.000Z`, as metadata-action writes `org.opencontainers.image.created`.
pub fn rfc3339_millis(t: i64) -> String {
    let c = to_civil(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Formats Unix time `t` in zone `tz` with moment.js tokens: `YYYY YY Q M MM MMM MMMM Mo D DD
/// Do DDD DDDD d do dd ddd dddd E H HH h hh k kk m mm s ss S SS SSS A a Z ZZ X x`, and
/// `[literal text]`. Other characters are copied.
pub fn format_moment(fmt: &str, t: i64, tz: TimeZone) -> String {
    let c = tz.civil(t);
    let h12 = if c.hour.is_multiple_of(12) {
        12
    } else {
        c.hour % 12
    };
    const TOKENS: &[&str] = &[
        "YYYY", "MMMM", "dddd", "DDDD", "SSS", "MMM", "ddd", "DDD", "YY", "MM", "Mo", "DD", "Do",
        "do", "dd", "HH", "hh", "kk", "mm", "ss", "SS", "ZZ", "Q", "M", "D", "d", "E", "H", "h",
        "k", "m", "s", "S", "A", "a", "Z", "X", "x",
    ];
    let mut out = String::new();
    let mut rest = fmt;
    while !rest.is_empty() {
        if let Some(lit) = rest.strip_prefix('[')
            && let Some(end) = lit.find(']')
        {
            out.push_str(&lit[..end]);
            rest = &lit[end + 1..];
            continue;
        }
        let Some(tok) = TOKENS.iter().find(|t| rest.starts_with(**t)) else {
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
            continue;
        };
        let month = MONTHS[(c.month as usize - 1).min(11)];
        let day = DAYS[(c.weekday as usize).min(6)];
        let s = match *tok {
            "YYYY" => format!("{:04}", c.year),
            "YY" => format!("{:02}", c.year.rem_euclid(100)),
            "Q" => ((c.month - 1) / 3 + 1).to_string(),
            "M" => c.month.to_string(),
            "MM" => format!("{:02}", c.month),
            "Mo" => ordinal(c.month),
            "MMM" => month[..3].to_string(),
            "MMMM" => month.to_string(),
            "D" => c.day.to_string(),
            "DD" => format!("{:02}", c.day),
            "Do" => ordinal(c.day),
            "DDD" => c.yday.to_string(),
            "DDDD" => format!("{:03}", c.yday),
            "d" => c.weekday.to_string(),
            "do" => ordinal(c.weekday),
            "dd" => day[..2].to_string(),
            "ddd" => day[..3].to_string(),
            "dddd" => day.to_string(),
            "E" => (if c.weekday == 0 { 7 } else { c.weekday }).to_string(),
            "H" => c.hour.to_string(),
            "HH" => format!("{:02}", c.hour),
            "h" => h12.to_string(),
            "hh" => format!("{h12:02}"),
            "k" => (if c.hour == 0 { 24 } else { c.hour }).to_string(),
            "kk" => format!("{:02}", if c.hour == 0 { 24 } else { c.hour }),
            "m" => c.minute.to_string(),
            "mm" => format!("{:02}", c.minute),
            "s" => c.second.to_string(),
            "ss" => format!("{:02}", c.second),
            "S" => "0".into(),
            "SS" => "00".into(),
            "SSS" => "000".into(),
            "A" => (if c.hour < 12 { "AM" } else { "PM" }).into(),
            "a" => (if c.hour < 12 { "am" } else { "pm" }).into(),
            "Z" => tz.offset_string(true),
            "ZZ" => tz.offset_string(false),
            "X" => t.to_string(),
            "x" => t.saturating_mul(1000).to_string(),
            _ => String::new(),
        };
        out.push_str(&s);
        rest = &rest[tok.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2020-01-10T00:30:00Z, the time metadata-action's documentation uses.
    const T: i64 = 1_578_616_200;

    #[test]
    fn civil_round_trip() {
        for t in [0, T, -1, 951_782_400, 4_102_444_800, -62_135_596_800] {
            assert_eq!(from_civil(&to_civil(t)), t, "{t}");
        }
        let c = to_civil(T);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.weekday, c.yday),
            (2020, 1, 10, 0, 30, 5, 10)
        );
        assert_eq!(rfc3339_millis(T), "2020-01-10T00:30:00.000Z");
        assert_eq!(to_civil(951_782_400).day, 29); // 2000-02-29
    }

    #[test]
    fn moment_formats() {
        assert_eq!(format_moment("YYYYMMDD", T, TimeZone::UTC), "20200110");
        let tokyo = TimeZone::parse("Asia/Tokyo").unwrap();
        assert_eq!(
            format_moment("YYYYMMDD-HHmmss", T, tokyo),
            "20200110-093000"
        );
        let afternoon = T - 1800 + 15 * 3600 + 25 * 60 + 50;
        assert_eq!(
            format_moment("dddd, MMMM Do YYYY, h:mm:ss a", afternoon, TimeZone::UTC),
            "Friday, January 10th 2020, 3:25:50 pm"
        );
        assert_eq!(
            format_moment("YYYY-MM-DDTHH:mm:ss.SSS[Z]", T, TimeZone::UTC),
            "2020-01-10T00:30:00.000Z"
        );
        assert_eq!(format_moment("Z", T, tokyo), "+09:00");
    }

    #[test]
    fn zones() {
        assert_eq!(TimeZone::parse("+05:30").unwrap().offset_seconds, 19_800);
        assert_eq!(TimeZone::parse("-0800").unwrap().offset_seconds, -28_800);
        assert_eq!(TimeZone::parse("Etc/GMT-9").unwrap().offset_seconds, 32_400);
        assert_eq!(TimeZone::parse("UTC+2").unwrap().offset_seconds, 7_200);
        assert_eq!(TimeZone::parse("utc").unwrap(), TimeZone::UTC);
        assert!(TimeZone::parse("Europe/Paris").is_err());
        assert!(TimeZone::parse("+25:00").is_err());
    }
}
