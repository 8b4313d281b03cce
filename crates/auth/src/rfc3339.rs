//! RFC 3339 timestamps: the keystore's `expires_at`, and (through
//! [`parse_rfc3339_ms`]) the server's time filters, one grammar for both:
//! `T`, `t` or a space between date and time, `Z`/`z` or a `±hh:mm`
//! offset, any number of fraction digits (kept to the millisecond), leap
//! second 60 accepted. humantime's parser is stricter (no offsets), so it
//! would reject files that load today. Written as UTC seconds by humantime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second RFC 3339 (four-digit years) can express.
pub(crate) const MAX_UNIX_SECS: u64 = 253_402_300_799;

/// `t` as RFC 3339 UTC seconds, or `None` outside 1970..=9999 (humantime
/// would fail to format it, and `to_string` would panic).
pub(crate) fn format_time(t: SystemTime) -> Option<String> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    (secs <= MAX_UNIX_SECS).then(|| humantime::format_rfc3339_seconds(t).to_string())
}

/// RFC 3339 text to a `SystemTime` (offsets accepted, sub-second precision
/// kept to the millisecond).
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    let ms =
        parse_rfc3339_ms(text).ok_or_else(|| format!("{text:?} is not an RFC 3339 timestamp"))?;
    let ms = u64::try_from(ms).map_err(|_| format!("{text:?} is before 1970"))?;
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .ok_or_else(|| format!("{text:?} is out of range"))
}

/// Parses RFC 3339 date-time (`2026-11-23T11:30:00.123Z`, offsets allowed)
/// into milliseconds since the Unix epoch; sub-millisecond digits are cut.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(d.iter().fold(0i64, |n, &c| n * 10 + i64::from(c - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let days = epoch_days(year, month, day)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &b[start..i.min(start + 3)];
        frac_ms = digits
            .iter()
            .fold(0i64, |n, &c| n * 10 + i64::from(c - b'0'));
        frac_ms *= 10i64.pow(3 - digits.len() as u32);
    }
    let offset_s = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(secs * 1000 + frac_ms)
}

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// Days since 1970-01-01 of a real proleptic Gregorian date, or `None`
/// (a month outside 1–12, a day its month lacks). The calendar is the
/// `time` crate's, not hand-written.
fn epoch_days(year: i64, month: i64, day: i64) -> Option<i64> {
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?)
            .ok()?;
    Some(i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's own cases (`params::tests::timestamps`), so the two
    /// parsers cannot drift apart unnoticed.
    #[test]
    fn same_grammar_as_the_server() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_rfc3339_ms("2026-11-23T11:30:00.123456Z"),
            Some(1_795_433_400_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-23T12:30:00.123+01:00"),
            parse_rfc3339_ms("2026-11-23T11:30:00.123Z")
        );
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), Some(-1000));
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T00:00:00z"),
            Some(1_709_164_800_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-23 11:30:00-00:30"),
            Some(1_795_433_400_000 + 1_800_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2016-12-31T23:59:60Z"),
            parse_rfc3339_ms("2017-01-01T00:00:00Z")
        );
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23T11:30:00",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T11:30:00.Z",
            "2026-11-23T11:30:00+1:00",
            "2026-11-23T11:30:00+24:00",
            "2026-11-23T11:30:00Zjunk",
            "+026-11-23T11:30:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn calendar() {
        assert_eq!(epoch_days(1970, 1, 1), Some(0));
        assert_eq!(epoch_days(2000, 3, 1), Some(11_017));
        assert_eq!(epoch_days(1969, 12, 31), Some(-1));
        assert!(epoch_days(2024, 2, 29).is_some());
        assert_eq!(epoch_days(1900, 2, 29), None);
        assert!(epoch_days(2000, 2, 29).is_some());
        assert_eq!(epoch_days(2026, 11, 31), None);
        assert_eq!(epoch_days(2026, 13, 1), None);
        assert_eq!(epoch_days(2026, 0, 1), None);
        assert_eq!(epoch_days(2026, 1, 0), None);
    }
}
