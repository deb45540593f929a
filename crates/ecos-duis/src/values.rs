//! Lexical parsing of the XSD simple types used by DUIS 6.23.

use base64::Engine as _;
use jiff::Timestamp;

use crate::error::ValueError;
use crate::ids::is_xml_ws;

/// xs:boolean after whitespace collapsing: `true`, `false`, `1`, `0`.
pub fn boolean(s: &str) -> Result<bool, ValueError> {
    match s.trim_matches(is_xml_ws) {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ValueError::Boolean),
    }
}

/// xs:nonNegativeInteger (optional `+`, leading zeros allowed, `-0` allowed)
/// bounded by `max`.
pub fn non_negative(s: &str, max: u64) -> Result<u64, ValueError> {
    let t = s.trim_matches(is_xml_ws);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'+') => (false, &t[1..]),
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::Integer);
    }
    let significant = digits.trim_start_matches('0');
    if neg && !significant.is_empty() {
        return Err(ValueError::Integer);
    }
    if significant.is_empty() {
        return Ok(0);
    }
    let v = significant
        .parse::<u64>()
        .map_err(|_| ValueError::TooLarge { max })?;
    if v > max {
        return Err(ValueError::TooLarge { max });
    }
    Ok(v)
}

/// xs:decimal lexical form (after collapsing).
pub fn decimal(s: &str) -> Result<&str, ValueError> {
    let t = s.trim_matches(is_xml_ws);
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    let ok = digits(int)
        && frac.is_none_or(digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    if ok { Ok(t) } else { Err(ValueError::Decimal) }
}

fn digits_n(s: &str, n: usize) -> Option<u32> {
    if s.len() == n && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// xs:dateTime that must carry the `Z` designator; returns the instant.
///
/// Accepts any number of fractional digits (precision beyond nanoseconds is
/// truncated) and `24:00:00` (the next midnight), as XSD does.
pub fn datetime_utc(s: &str) -> Result<Timestamp, ValueError> {
    let t = s.trim_matches(is_xml_ws);
    if let Some(body) = t.strip_suffix('Z') {
        return datetime_body(body);
    }
    // a well-formed local time or offset is valid XSD, but not UTC
    let b = t.as_bytes();
    let n = b.len();
    let has_offset = n >= 6
        && matches!(b[n - 6], b'+' | b'-')
        && b[n - 3] == b':'
        && [n - 5, n - 4, n - 2, n - 1]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    let body = if has_offset { &t[..n - 6] } else { t };
    datetime_body(body)?;
    Err(ValueError::NotUtc)
}

fn datetime_body(body: &str) -> Result<Timestamp, ValueError> {
    let bad = |why: &str| ValueError::DateTime(why.to_string());
    if body.starts_with('-') {
        return Err(bad("negative years are not supported"));
    }
    let (date, time) = body
        .split_once('T')
        .ok_or_else(|| bad("missing the T separator"))?;
    let mut dp = date.splitn(3, '-');
    let (Some(y), Some(mo), Some(d)) = (dp.next(), dp.next(), dp.next()) else {
        return Err(bad("date must be YYYY-MM-DD"));
    };
    if y.len() > 4 {
        return Err(bad("years after 9999 are not supported"));
    }
    let year = digits_n(y, 4).ok_or_else(|| bad("year must be four digits"))?;
    let month = digits_n(mo, 2).ok_or_else(|| bad("month must be two digits"))?;
    let day = digits_n(d, 2).ok_or_else(|| bad("day must be two digits"))?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (time, None),
    };
    let mut tp = hms.splitn(3, ':');
    let (Some(h), Some(mi), Some(se)) = (tp.next(), tp.next(), tp.next()) else {
        return Err(bad("time must be hh:mm:ss"));
    };
    let hour = digits_n(h, 2).ok_or_else(|| bad("hour must be two digits"))?;
    let minute = digits_n(mi, 2).ok_or_else(|| bad("minute must be two digits"))?;
    let second = digits_n(se, 2).ok_or_else(|| bad("second must be two digits"))?;
    let mut nanos = 0u32;
    if let Some(f) = frac {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("fractional seconds must be digits"));
        }
        for (i, b) in f.bytes().take(9).enumerate() {
            nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
        }
    }
    let end_of_day = hour == 24;
    if end_of_day
        && (minute != 0 || second != 0 || frac.is_some_and(|f| f.bytes().any(|b| b != b'0')))
    {
        return Err(bad("24:00:00 must have zero minutes and seconds"));
    }
    let to_i8 = |v: u32| i8::try_from(v).map_err(|_| bad("field out of range"));
    let dt = jiff::civil::DateTime::new(
        i16::try_from(year).map_err(|_| bad("year out of range"))?,
        to_i8(month)?,
        to_i8(day)?,
        to_i8(if end_of_day { 0 } else { hour })?,
        to_i8(minute)?,
        to_i8(second)?,
        i32::try_from(nanos).map_err(|_| bad("fraction out of range"))?,
    )
    .map_err(|e| ValueError::DateTime(e.to_string()))?;
    let ts = jiff::tz::TimeZone::UTC
        .to_timestamp(dt)
        .map_err(|e| ValueError::DateTime(e.to_string()))?;
    if end_of_day {
        ts.checked_add(jiff::SignedDuration::from_hours(24))
            .map_err(|e| ValueError::DateTime(e.to_string()))
    } else {
        Ok(ts)
    }
}

/// xs:base64Binary: XML whitespace ignored, canonical padding required.
pub fn base64(s: &str) -> Result<Vec<u8>, ValueError> {
    let compact: String = s.chars().filter(|c| !is_xml_ws(*c)).collect();
    if compact.is_empty() {
        return Err(ValueError::Base64("empty".to_string()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| ValueError::Base64(e.to_string()))
}

/// Characters of an xs:string value, as XSD counts length.
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        for (s, v) in [
            ("true", true),
            ("false", false),
            ("1", true),
            ("0", false),
            (" true\n", true),
        ] {
            assert_eq!(boolean(s), Ok(v), "{s}");
        }
        for s in ["TRUE", "yes", "", "01", "t"] {
            assert_eq!(boolean(s), Err(ValueError::Boolean), "{s}");
        }
    }

    #[test]
    fn integers() {
        let max = i64::MAX as u64;
        assert_eq!(non_negative("0", max), Ok(0));
        assert_eq!(non_negative("+007", max), Ok(7));
        assert_eq!(non_negative("-0", max), Ok(0));
        assert_eq!(non_negative("9223372036854775807", max), Ok(max));
        assert_eq!(
            non_negative("9223372036854775808", max),
            Err(ValueError::TooLarge { max })
        );
        assert_eq!(
            non_negative("99999999999999999999999", max),
            Err(ValueError::TooLarge { max })
        );
        for s in ["", "-1", "1.0", "1e3", "+", " 1 2"] {
            assert_eq!(non_negative(s, max), Err(ValueError::Integer), "{s}");
        }
    }

    #[test]
    fn datetimes() {
        let t = datetime_utc("2030-01-02T00:00:00.00Z").unwrap();
        assert_eq!(t.to_string(), "2030-01-02T00:00:00Z");
        let t = datetime_utc("2030-01-02T12:34:56.123456789123Z").unwrap();
        assert_eq!(t.subsec_nanosecond(), 123_456_789);
        assert_eq!(
            datetime_utc("2030-01-01T24:00:00Z").unwrap(),
            datetime_utc("2030-01-02T00:00:00Z").unwrap()
        );
        assert_eq!(datetime_utc("2030-01-02T00:00:00"), Err(ValueError::NotUtc));
        assert_eq!(
            datetime_utc("2030-01-02T00:00:00+01:00"),
            Err(ValueError::NotUtc)
        );
        for s in [
            "2030-01-02 00:00:00Z",
            "2030-1-02T00:00:00Z",
            "2030-02-30T00:00:00Z",
            "2030-01-02T25:00:00Z",
            "2030-01-02T00:00:00.Z",
            "12030-01-02T00:00:00Z",
            "2030-01-02t00:00:00Z",
            "2030-01-02T00:00:00z",
            "Z",
        ] {
            assert!(
                matches!(datetime_utc(s), Err(ValueError::DateTime(_))),
                "{s}"
            );
        }
    }

    #[test]
    fn decimals() {
        for s in ["5.4", "5", "+5.", ".4", "-0.10"] {
            assert!(decimal(s).is_ok(), "{s}");
        }
        for s in ["", ".", "5.4.1", "v5", "5,4"] {
            assert_eq!(decimal(s), Err(ValueError::Decimal), "{s}");
        }
    }
}
