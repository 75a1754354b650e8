//! Where a limiter's day starts: midnight in the configured IANA time zone
//! (`[limits] timezone`), daylight-saving days included (23 or 25 hours).

pub use jiff::tz::TimeZone;
use jiff::Timestamp;

/// One calendar day: its id (`20261203`) and its span in Unix milliseconds.
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
}
