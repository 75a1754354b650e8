//! Where a limiter's day (and a budget's month) starts: midnight in the
//! configured IANA time zone (`[limits] timezone`), daylight-saving days
//! included (23 or 25 hours).

pub use jiff::tz::TimeZone;
use jiff::Timestamp;

/// One calendar day (id `20261203`) or month (id `202612`), and its span
/// in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaySpan {
    pub id: i64,
    pub start_ms: u64,
    pub end_ms: u64,
}

impl DaySpan {
    pub fn contains(&self, now_ms: u64) -> bool {
        (self.start_ms..self.end_ms).contains(&now_ms)
    }
}

/// The time zone named `name` (`UTC`, `Asia/Shanghai`), from the bundled
/// database, so a machine without tzdata still knows it.
pub fn zone(name: &str) -> Option<TimeZone> {
    TimeZone::get(name).ok()
}

/// The day in `tz` that holds `now_ms`.
pub fn day_of(tz: &TimeZone, now_ms: u64) -> DaySpan {
    let millis = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let ts = Timestamp::from_millisecond(millis).unwrap_or(Timestamp::MAX);
    let date = ts.to_zoned_datetime(tz.clone()).date();
    let id =
        i64::from(date.year()) * 10_000 + i64::from(date.month()) * 100 + i64::from(date.day());
    let edge = |d: jiff::civil::Date| -> u64 {
        d.to_zoned_datetime(tz.clone())
            .map(|z| u64::try_from(z.timestamp().as_millisecond()).unwrap_or(0))
            .unwrap_or(0)
    };
    let start_ms = edge(date);
    let end_ms = date.tomorrow().map_or(u64::MAX, edge);
    DaySpan {
        id,
        start_ms,
        end_ms: end_ms.max(now_ms.saturating_add(1)),
    }
}

/// The calendar month in `tz` that holds `now_ms`: from midnight on its
/// first day to midnight on the next month's.
pub fn month_of(tz: &TimeZone, now_ms: u64) -> DaySpan {
    let millis = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let ts = Timestamp::from_millisecond(millis).unwrap_or(Timestamp::MAX);
    let date = ts.to_zoned_datetime(tz.clone()).date();
    let id = i64::from(date.year()) * 100 + i64::from(date.month());
    let edge = |d: jiff::civil::Date| -> u64 {
        d.to_zoned_datetime(tz.clone())
            .map(|z| u64::try_from(z.timestamp().as_millisecond()).unwrap_or(0))
            .unwrap_or(0)
    };
    let start_ms = edge(date.first_of_month());
    let end_ms = date.last_of_month().tomorrow().map_or(u64::MAX, edge);
    DaySpan {
        id,
        start_ms,
        end_ms: end_ms.max(now_ms.saturating_add(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        u64::try_from(s.parse::<Timestamp>().unwrap().as_millisecond()).unwrap()
    }

    #[test]
    fn days_start_at_local_midnight() {
        let shanghai = zone("Asia/Shanghai").unwrap();
        // 15:59:59 UTC is 23:59:59 in Shanghai; a second later is tomorrow.
        let before = day_of(&shanghai, ms("2026-12-03T15:59:59Z"));
        let after = day_of(&shanghai, ms("2026-12-03T16:00:00Z"));
        assert_eq!((before.id, after.id), (20261203, 20261204));
        assert_eq!(before.end_ms, ms("2026-12-03T16:00:00Z"));
        assert_eq!(after.start_ms, before.end_ms);
        let utc = zone("UTC").unwrap();
        assert_eq!(day_of(&utc, ms("2026-12-03T16:00:00Z")).id, 20261203);
        assert!(zone("Mars/Olympus").is_none());
    }

    #[test]
    fn daylight_saving_days_have_their_real_length() {
        let ny = zone("America/New_York").unwrap();
        let spring = day_of(&ny, ms("2026-03-08T12:00:00Z"));
        assert_eq!(spring.end_ms - spring.start_ms, 23 * 3_600_000);
        let autumn = day_of(&ny, ms("2026-11-01T12:00:00Z"));
        assert_eq!(autumn.end_ms - autumn.start_ms, 25 * 3_600_000);
    }

    #[test]
    fn months_start_at_local_midnight_on_the_first() {
        let shanghai = zone("Asia/Shanghai").unwrap();
        // 2026-12-31T15:59:59Z is 23:59:59 on New Year's Eve in Shanghai.
        let before = month_of(&shanghai, ms("2026-12-31T15:59:59Z"));
        let after = month_of(&shanghai, ms("2026-12-31T16:00:00Z"));
        assert_eq!((before.id, after.id), (202612, 202701));
        assert_eq!(before.start_ms, ms("2026-11-30T16:00:00Z"));
        assert_eq!(before.end_ms, ms("2026-12-31T16:00:00Z"));
        assert_eq!(after.start_ms, before.end_ms);
        // February 2028 has 29 days; UTC has no offset.
        let feb = month_of(&zone("UTC").unwrap(), ms("2028-02-10T00:00:00Z"));
        assert_eq!(feb.id, 202802);
        assert_eq!(feb.end_ms - feb.start_ms, 29 * 86_400_000);
        // A month with a daylight-saving change is an hour short.
        let march = month_of(
            &zone("America/New_York").unwrap(),
            ms("2026-03-15T12:00:00Z"),
        );
        assert_eq!(march.end_ms - march.start_ms, 31 * 86_400_000 - 3_600_000);
        assert!(march.contains(ms("2026-03-15T12:00:00Z")));
    }
}
