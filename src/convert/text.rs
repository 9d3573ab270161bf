//! Exact text parsing and formatting for conversions: calendar dates, RFC 3339 timestamps,
//! decimals (exact or rounded half to even) and doubles. Hand-written so that the hot loops
//! allocate nothing and every rule (what is accepted, what is dirty) is visible here.

use std::fmt::{self, Write};

/// Milliseconds in a day.
pub(super) const MS_PER_DAY: i64 = 86_400_000;

/// Days from 1970-01-01 to `y-m-d` in the proleptic Gregorian calendar (H. Hinnant's
/// `days_from_civil`). `m` is 1..=12, `d` 1..=31.
pub(super) const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // 0..=399
    let m = m as i64;
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d as i64 - 1; // 0..=365
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // 0..=146096
    era * 146_097 + doe - 719_468
}

/// The calendar day `(year, month, day)` of `days` since 1970-01-01 (inverse of
/// [`days_from_civil`]).
pub(super) const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // 0..=11
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// First millisecond of year 0000 (UTC).
pub(super) const RFC3339_MIN_MS: i64 = days_from_civil(0, 1, 1) * MS_PER_DAY;
/// Last millisecond of year 9999 (UTC).
pub(super) const RFC3339_MAX_MS: i64 = days_from_civil(10_000, 1, 1) * MS_PER_DAY - 1;

/// `n` ASCII digits at `b[at..]` as a number, or `None`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// `YYYY-MM-DD` at the start of `b` as days since 1970-01-01, checking the calendar.
fn date_prefix(b: &[u8]) -> Option<i64> {
    let y = digits(b, 0, 4)?;
    let m = digits(b, 5, 2)?;
    let d = digits(b, 8, 2)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let y = i64::from(y);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Parses `YYYY-MM-DD` (exactly) into days since 1970-01-01.
pub(super) fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 {
        return None;
    }
    // Four-digit years keep the day count far inside i32.
    date_prefix(b).map(|d| d as i32)
}

/// Why a text is not a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimestampError {
    /// Not RFC 3339 with an offset, nor `YYYY-MM-DD HH:MM:SS[.f]`.
    Invalid,
    /// Valid, but with non-zero fractional digits finer than the target unit.
    TooPrecise,
}

/// Parses an RFC 3339 timestamp with offset (`2024-05-01T12:00:00.5+02:00`, `...Z`; `T`, `t` or
/// a space between date and time) or, with a space and no offset,
/// `YYYY-MM-DD HH:MM:SS[.fff]` taken as UTC. Returns the instant in units of `10^-digits`
/// seconds since the epoch (`digits` = 3 for ms, 6 for µs). Fractional digits finer than the
/// unit must be zeros. Leap seconds (`:60`) are refused.
pub(super) fn parse_timestamp(s: &str, digits_per_second: u32) -> Result<i64, TimestampError> {
    use TimestampError::Invalid;
    let b = s.as_bytes();
    let days = date_prefix(b).ok_or(Invalid)?;
    let sep = *b.get(10).ok_or(Invalid)?;
    if !matches!(sep, b'T' | b't' | b' ') {
        return Err(Invalid);
    }
    let hh = digits(b, 11, 2).ok_or(Invalid)?;
    let mm = digits(b, 14, 2).ok_or(Invalid)?;
    let ss = digits(b, 17, 2).ok_or(Invalid)?;
    if b[13] != b':' || b[16] != b':' || hh > 23 || mm > 59 || ss > 59 {
        return Err(Invalid);
    }
    let mut pos = 19;
    let mut frac: i64 = 0;
    let mut too_precise = false;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while let Some(c) = b.get(pos).filter(|c| c.is_ascii_digit()) {
            let n = pos - start;
            if n < digits_per_second as usize {
                frac = frac * 10 + i64::from(c - b'0');
            } else if *c != b'0' {
                too_precise = true;
            }
            pos += 1;
        }
        let n = pos - start;
        if n == 0 {
            return Err(Invalid);
        }
        for _ in n..digits_per_second as usize {
            frac *= 10;
        }
    }
    let offset_secs: i64 = match b.get(pos) {
        None if sep == b' ' => 0,
        None => return Err(Invalid),
        Some(b'Z' | b'z') if pos + 1 == b.len() => 0,
        Some(&c @ (b'+' | b'-')) if pos + 6 == b.len() => {
            let oh = digits(b, pos + 1, 2).ok_or(Invalid)?;
            let om = digits(b, pos + 4, 2).ok_or(Invalid)?;
            if b[pos + 3] != b':' || oh > 23 || om > 59 {
                return Err(Invalid);
            }
            let off = i64::from(oh * 3600 + om * 60);
            if c == b'-' {
                -off
            } else {
                off
            }
        }
        Some(_) => return Err(Invalid),
    };
    if too_precise {
        return Err(TimestampError::TooPrecise);
    }
    let secs = days * 86_400 + i64::from(hh * 3600 + mm * 60 + ss) - offset_secs;
    // Years 0000..=9999 keep this far inside i64 even in nanoseconds.
    Ok(secs * 10i64.pow(digits_per_second) + frac)
}

/// Writes `ms` since the epoch as RFC 3339 UTC with milliseconds
/// (`2024-05-01T12:00:00.000Z`). Years outside 0000..=9999 are written in the ISO 8601
/// expanded form (`+10000-...`, `-0001-...`); check [`RFC3339_MIN_MS`]..=[`RFC3339_MAX_MS`]
/// first when strict RFC 3339 is required.
pub(super) fn write_timestamp_ms(out: &mut impl Write, ms: i64) -> fmt::Result {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        write!(out, "{y:04}")?;
    } else if y > 9999 {
        write!(out, "+{y}")?;
    } else {
        write!(out, "{y:05}")?;
    }
    write!(
        out,
        "-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Writes a double as the shortest text that reads back to the same value (`0.1`, `3.0`,
/// `1e16`, `-0.0`), and `NaN`, `Infinity`, `-Infinity` for the non-finite values.
pub(super) fn write_double(out: &mut impl Write, v: f64) -> fmt::Result {
    if v.is_nan() {
        out.write_str("NaN")
    } else if v.is_infinite() {
        out.write_str(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        write!(out, "{v:?}")
    }
}

/// Whether `s` spells an infinity that Rust's float parser reads (`inf`, `-Infinity`, ...).
pub(super) fn is_infinity_literal(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    t.eq_ignore_ascii_case("inf") || t.eq_ignore_ascii_case("infinity")
}

/// Why a text is not a decimal of the wanted shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DecimalError {
    /// Not a decimal number.
    Invalid,
    /// Needs more than `precision` digits at the scale.
    Overflow,
    /// Has non-zero digits beyond `scale` (only when not rounding).
    TooManyFractionDigits,
}

/// 10^n for n in 0..=38.
pub(super) fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

/// Parses decimal text (`-12.50`, `+3`, `.5`, `1.5e3`) into the unscaled value of a
/// `decimal(precision, scale)`. Without `round`, non-zero digits beyond the scale are an error
/// (trailing zeros are fine); with it they are rounded half to even. `Overflow` when the
/// result needs more than `precision` digits.
pub(super) fn parse_decimal(
    s: &str,
    precision: u8,
    scale: i8,
    round: bool,
) -> Result<i128, DecimalError> {
    use DecimalError::{Invalid, Overflow};
    let b = s.as_bytes();
    let (negative, mut pos) = match b.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let int_start = pos;
    while b.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
    }
    let int_digits = &b[int_start..pos];
    let mut frac_digits: &[u8] = &[];
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        frac_digits = &b[start..pos];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(Invalid);
    }
    let mut exponent: i64 = 0;
    if matches!(b.get(pos), Some(b'e' | b'E')) {
        pos += 1;
        let exp_negative = match b.get(pos) {
            Some(b'-') => {
                pos += 1;
                true
            }
            Some(b'+') => {
                pos += 1;
                false
            }
            _ => false,
        };
        let start = pos;
        while let Some(c) = b.get(pos).filter(|c| c.is_ascii_digit()) {
            // Anything this large is an overflow or all-fraction anyway; saturate.
            exponent = (exponent * 10 + i64::from(c - b'0')).min(1_000_000);
            pos += 1;
        }
        if pos == start {
            return Err(Invalid);
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    if pos != b.len() {
        return Err(Invalid);
    }

    // The digits as one sequence, value = seq * 10^(exponent - frac_len).
    let digit = |i: usize| -> u8 {
        if i < int_digits.len() {
            int_digits[i] - b'0'
        } else {
            frac_digits[i - int_digits.len()] - b'0'
        }
    };
    let n = int_digits.len() + frac_digits.len();
    let Some(first) = (0..n).find(|&i| digit(i) != 0) else {
        return Ok(0);
    };
    let last = (0..n).rev().find(|&i| digit(i) != 0).unwrap_or(first);
    // Significant digits D = seq[first..=last]; value = D * 10^e.
    let len = (last - first + 1) as i64;
    let e = exponent - frac_digits.len() as i64 + (n - 1 - last) as i64;
    let shift = e + i64::from(scale);
    let p = i64::from(precision);
    let magnitude = if shift >= 0 {
        if len + shift > p {
            return Err(Overflow);
        }
        let mut v: i128 = 0;
        for i in first..=last {
            v = v * 10 + i128::from(digit(i));
        }
        v * pow10(shift as u32)
    } else {
        if !round {
            return Err(DecimalError::TooManyFractionDigits);
        }
        let dropped = -shift; // digits of D (and leading zeros) below the scale
        let kept_len = len - dropped;
        if kept_len > p {
            return Err(Overflow);
        }
        let mut v: i128 = 0;
        for i in 0..kept_len.max(0) as usize {
            v = v * 10 + i128::from(digit(first + i));
        }
        // First dropped digit, and whether any non-zero digit follows it.
        let (first_dropped, more) = if kept_len >= 0 {
            let at = first + kept_len as usize;
            (digit(at), at < last)
        } else {
            (0, true)
        };
        let up = match first_dropped {
            6..=9 => true,
            5 => more || v % 2 == 1,
            _ => false,
        };
        if up {
            v += 1;
            if v >= pow10(precision as u32) {
                return Err(Overflow);
            }
        }
        v
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// Writes the unscaled decimal `v` at `scale` as text (`-12.50`).
#[cfg(test)]
pub(super) fn format_decimal(v: i128, scale: i8) -> String {
    let digits = v.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    let sign = if v < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// A string for a dirty-row detail: quoted and escaped, cut after 64 characters.
pub(super) fn quote(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};
    use proptest::prelude::*;

    fn ts(s: &str) -> Result<i64, TimestampError> {
        parse_timestamp(s, 3)
    }

    fn ms_text(ms: i64) -> String {
        let mut s = String::new();
        write_timestamp_ms(&mut s, ms).unwrap();
        s
    }

    #[test]
    fn civil_round_trip_edges() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(days_from_civil(0, 1, 1)), (0, 1, 1));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("1900-02-29"), None);
        assert_eq!(parse_date("2000-02-29"), Some(11_016));
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(parse_date("2024-04-31"), None);
        assert_eq!(parse_date("2024-00-10"), None);
        assert_eq!(parse_date("2024-1-01"), None);
        assert_eq!(parse_date("2024-01-01 "), None);
        assert_eq!(parse_date("2024/01/01"), None);
        assert_eq!(parse_date(""), None);
        assert_eq!(parse_date("0000-01-01"), Some(-719_528));
        assert_eq!(parse_date("9999-12-31"), Some(2_932_896));
    }

    #[test]
    fn timestamps_accepted() {
        assert_eq!(ts("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(ts("1970-01-01T00:00:00.001Z"), Ok(1));
        assert_eq!(ts("1970-01-01t00:00:00.1z"), Ok(100));
        assert_eq!(ts("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(ts("1969-12-31T19:00:00-05:00"), Ok(0));
        assert_eq!(ts("1969-12-31T23:59:59.999Z"), Ok(-1));
        assert_eq!(ts("2024-05-01 12:00:00"), Ok(1_714_564_800_000));
        assert_eq!(ts("2024-05-01 12:00:00.250"), Ok(1_714_564_800_250));
        assert_eq!(ts("2024-05-01 14:00:00+02:00"), Ok(1_714_564_800_000));
        assert_eq!(ts("2024-05-01T12:00:00.123000000Z"), Ok(1_714_564_800_123));
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00.123456Z", 6),
            Ok(1_714_564_800_123_456)
        );
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00.5Z", 6),
            Ok(1_714_564_800_500_000)
        );
    }

    #[test]
    fn timestamps_refused() {
        use TimestampError::*;
        for bad in [
            "2024-05-01T12:00:00",       // T form needs an offset
            "2024-05-01",                // no time
            "2024-05-01T12:00Z",         // no seconds
            "2024-05-01T24:00:00Z",      // hour
            "2024-05-01T12:60:00Z",      // minute
            "2024-05-01T23:59:60Z",      // leap second
            "2024-02-30T00:00:00Z",      // day
            "2024-05-01T12:00:00.Z",     // empty fraction
            "2024-05-01T12:00:00+0200",  // offset without colon
            "2024-05-01T12:00:00+24:00", // offset hour
            "2024-05-01T12:00:00Zjunk",  // trailing text
            "2024-05-01X12:00:00Z",      // separator
            " 2024-05-01T12:00:00Z",     // leading space
            "",
        ] {
            assert_eq!(ts(bad), Err(Invalid), "{bad:?}");
        }
        assert_eq!(ts("2024-05-01T12:00:00.1234Z"), Err(TooPrecise));
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00.1234567Z", 6),
            Err(TooPrecise)
        );
        // Invalid syntax wins over precision.
        assert_eq!(ts("2024-05-01T12:00:00.1234"), Err(Invalid));
    }

    #[test]
    fn writes_timestamps() {
        assert_eq!(ms_text(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(ms_text(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(ms_text(1_714_564_800_123), "2024-05-01T12:00:00.123Z");
        assert_eq!(ms_text(RFC3339_MIN_MS), "0000-01-01T00:00:00.000Z");
        assert_eq!(ms_text(RFC3339_MAX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(ms_text(RFC3339_MAX_MS + 1), "+10000-01-01T00:00:00.000Z");
        assert_eq!(ms_text(RFC3339_MIN_MS - 1), "-0001-12-31T23:59:59.999Z");
        // The extremes do not panic.
        ms_text(i64::MIN);
        ms_text(i64::MAX);
    }

    #[test]
    fn writes_doubles() {
        let text = |v: f64| {
            let mut s = String::new();
            write_double(&mut s, v).unwrap();
            s
        };
        assert_eq!(text(0.1), "0.1");
        assert_eq!(text(3.0), "3.0");
        assert_eq!(text(-0.0), "-0.0");
        assert_eq!(text(1e16), "1e16");
        assert_eq!(text(1.5e-7), "1.5e-7");
        assert_eq!(text(f64::NAN), "NaN");
        assert_eq!(text(f64::INFINITY), "Infinity");
        assert_eq!(text(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(text(f64::MAX).parse::<f64>().unwrap(), f64::MAX);
        assert!(is_infinity_literal("-Infinity"));
        assert!(is_infinity_literal("inf"));
        assert!(!is_infinity_literal("1e999"));
    }

    #[test]
    fn exact_decimals() {
        let d = |s: &str| parse_decimal(s, 5, 2, false);
        assert_eq!(d("123.45"), Ok(12_345));
        assert_eq!(d("-123.45"), Ok(-12_345));
        assert_eq!(d("+1"), Ok(100));
        assert_eq!(d(".5"), Ok(50));
        assert_eq!(d("5."), Ok(500));
        assert_eq!(d("0"), Ok(0));
        assert_eq!(d("-0.000"), Ok(0));
        assert_eq!(d("000123.4500"), Ok(12_345)); // zeros carry no digits
        assert_eq!(d("1.2345e2"), Ok(12_345));
        assert_eq!(d("12345E-2"), Ok(12_345));
        assert_eq!(d("999.99"), Ok(99_999));
        assert_eq!(d("1000"), Err(DecimalError::Overflow));
        assert_eq!(d("-999.991"), Err(DecimalError::TooManyFractionDigits));
        assert_eq!(d("1.234"), Err(DecimalError::TooManyFractionDigits));
        assert_eq!(d("1e999999999999"), Err(DecimalError::Overflow));
        assert_eq!(
            d("1e-999999999999"),
            Err(DecimalError::TooManyFractionDigits)
        );
        for bad in [
            "", "-", ".", "1.2.3", "1e", "e5", "1,5", " 1", "1 ", "NaN", "inf", "0x10",
        ] {
            assert_eq!(d(bad), Err(DecimalError::Invalid), "{bad:?}");
        }
        assert_eq!(
            parse_decimal("99999999999999999999999999999999999999", 38, 0, false),
            Ok(pow10(38) - 1)
        );
        assert_eq!(
            parse_decimal("100000000000000000000000000000000000000", 38, 0, false),
            Err(DecimalError::Overflow)
        );
        assert_eq!(
            parse_decimal("0.00000000000000000000000000000000000001", 38, 38, false),
            Ok(1)
        );
    }

    #[test]
    fn rounded_decimals_half_to_even() {
        let r = |s: &str| parse_decimal(s, 5, 2, true);
        assert_eq!(r("1.005"), Ok(100));
        assert_eq!(r("1.015"), Ok(102));
        assert_eq!(r("1.0151"), Ok(102));
        assert_eq!(r("1.0250"), Ok(102));
        assert_eq!(r("1.0251"), Ok(103));
        assert_eq!(r("-1.015"), Ok(-102));
        assert_eq!(r("2.675e0"), Ok(268));
        assert_eq!(r("0.004"), Ok(0));
        assert_eq!(r("0.005"), Ok(0));
        assert_eq!(r("0.0051"), Ok(1));
        assert_eq!(r("0.015"), Ok(2));
        assert_eq!(r("1e-9"), Ok(0));
        assert_eq!(r("999.994"), Ok(99_999));
        assert_eq!(r("999.995"), Err(DecimalError::Overflow));
        assert_eq!(r("5e-3"), Ok(0));
        assert_eq!(parse_decimal("5", 1, 0, true), Ok(5));
        assert_eq!(
            parse_decimal("9.5", 1, 0, true),
            Err(DecimalError::Overflow)
        );
        assert_eq!(parse_decimal("8.5", 1, 0, true), Ok(8));
    }

    #[test]
    fn formats_decimals() {
        assert_eq!(format_decimal(12_345, 2), "123.45");
        assert_eq!(format_decimal(-5, 2), "-0.05");
        assert_eq!(format_decimal(7, 0), "7");
        assert_eq!(format_decimal(0, 3), "0.000");
    }

    #[test]
    fn quotes_and_cuts() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("\"{}\"…", "x".repeat(64)));
    }

    proptest! {
        #[test]
        fn civil_matches_chrono(days in -3_000_000i64..3_000_000) {
            let (y, m, d) = civil_from_days(days);
            let date = NaiveDate::from_ymd_opt(y as i32, m, d).unwrap();
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
            prop_assert_eq!((date - epoch).num_days(), days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn timestamp_text_round_trips(ms in RFC3339_MIN_MS..=RFC3339_MAX_MS) {
            let text = ms_text(ms);
            prop_assert_eq!(ts(&text), Ok(ms));
            let chrono_ms = DateTime::parse_from_rfc3339(&text).unwrap().timestamp_millis();
            prop_assert_eq!(chrono_ms, ms);
        }

        #[test]
        fn offsets_agree_with_chrono(
            ms in 0i64..253_402_000_000_000,
            off_min in -(23 * 60 + 59)..=(23 * 60 + 59i32),
        ) {
            let utc = DateTime::from_timestamp_millis(ms).unwrap();
            let tz = chrono::FixedOffset::east_opt(off_min * 60).unwrap();
            let text = utc.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
            prop_assert_eq!(ts(&text), Ok(ms), "{}", text);
        }

        #[test]
        fn double_text_round_trips(v in any::<f64>()) {
            let mut s = String::new();
            write_double(&mut s, v).unwrap();
            let back: f64 = s.parse().unwrap();
            prop_assert!(back.to_bits() == v.to_bits() || (v.is_nan() && back.is_nan()), "{}", s);
        }

        #[test]
        fn decimal_text_round_trips(
            p in 1u8..=38,
            s_frac in 0.0f64..=1.0,
            raw in any::<i128>(),
        ) {
            let s = (f64::from(p) * s_frac).floor() as i8;
            let v = raw % pow10(u32::from(p));
            let text = format_decimal(v, s);
            prop_assert_eq!(parse_decimal(&text, p, s, false), Ok(v), "{}", text);
            prop_assert_eq!(parse_decimal(&text, p, s, true), Ok(v), "{}", text);
        }
    }
}
