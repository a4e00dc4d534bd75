//! `date-time` (INTERNALDATE, APPEND) and `date` (SEARCH) of RFC 9051 §9.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats seconds since the epoch as a `date-time`, in UTC:
/// `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE`
/// (without the quotes).
pub fn format_date_time(timestamp: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp(timestamp).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let month = MONTHS
        .get(usize::from(u8::from(at.month())) - 1)
        .copied()
        .unwrap_or("Jan");
    format!(
        "{:2}-{}-{:04} {:02}:{:02}:{:02} +0000",
        at.day(),
        month,
        at.year(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn month(text: &str) -> Option<Month> {
    let index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(text))?;
    Month::try_from(u8::try_from(index + 1).ok()?).ok()
}

fn number(text: &str, min_len: usize, max_len: usize) -> Option<u32> {
    if text.len() < min_len || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `date-text = date-day "-" date-month "-" date-year`; `date-day = 1*2DIGIT`.
pub fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.split('-');
    let day = number(parts.next()?, 1, 2)?;
    let month = month(parts.next()?)?;
    let year = number(parts.next()?, 4, 4)?;
    if parts.next().is_some() {
        return None;
    }
    Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()
}

/// `date-time` without its quotes: `date-day-fixed "-" date-month "-" date-year SP time
/// SP zone`; `date-day-fixed = (SP DIGIT) / 2DIGIT`; `zone = ("+" / "-") 4DIGIT`.
/// Returns seconds since the epoch.
pub fn parse_date_time(text: &str) -> Option<i64> {
    let text = text.strip_prefix(' ').unwrap_or(text);
    let mut fields = text.split(' ');
    let date = parse_date(fields.next()?)?;
    let mut clock = fields.next()?.split(':');
    let hour = number(clock.next()?, 2, 2)?;
    let minute = number(clock.next()?, 2, 2)?;
    let second = number(clock.next()?, 2, 2)?;
    if clock.next().is_some() {
        return None;
    }
    let zone = fields.next()?;
    if fields.next().is_some() || zone.len() != 5 {
        return None;
    }
    let sign = match zone.get(..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let zone_hours = number(zone.get(1..3)?, 2, 2)?;
    let zone_minutes = number(zone.get(3..5)?, 2, 2)?;
    let offset = UtcOffset::from_hms(
        (sign * i32::try_from(zone_hours).ok()?) as i8,
        (sign * i32::try_from(zone_minutes).ok()?) as i8,
        0,
    )
    .ok()?;
    let time = Time::from_hms(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
    )
    .ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .unix_timestamp(),
    )
}

/// The UTC calendar date of a timestamp: SEARCH compares dates "disregarding time and
/// timezone" (RFC 9051 §6.4.4).
pub fn date_of(timestamp: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(timestamp)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_date_time() {
        assert_eq!(format_date_time(0), " 1-Jan-1970 00:00:00 +0000");
        assert_eq!(format_date_time(760_686_745), " 8-Feb-1994 05:52:25 +0000");
        assert_eq!(
            parse_date_time("17-Jul-1996 02:44:25 -0700"),
            Some(837_596_665)
        );
        assert_eq!(
            parse_date_time(" 8-Feb-1994 05:52:25 +0000"),
            Some(760_686_745)
        );
        assert_eq!(
            parse_date_time("8-Feb-1994 05:52:25 +0000"),
            Some(760_686_745)
        );
        assert_eq!(parse_date_time("32-Feb-1994 05:52:25 +0000"), None);
        assert_eq!(parse_date_time("08-Feb-1994 25:52:25 +0000"), None);
        assert_eq!(parse_date_time("08-Feb-1994 05:52:25 0000"), None);
        assert_eq!(parse_date_time(""), None);
    }

    #[test]
    fn parses_search_dates() {
        assert_eq!(
            parse_date("1-Feb-1994"),
            Date::from_calendar_date(1994, Month::February, 1).ok()
        );
        assert_eq!(
            parse_date("01-feb-1994"),
            Date::from_calendar_date(1994, Month::February, 1).ok()
        );
        assert_eq!(parse_date("1-Foo-1994"), None);
        assert_eq!(parse_date("1-Feb-94"), None);
    }
}
