//! When a person may be disturbed: quiet hours in their own time zone,
//! correct across daylight-saving changes.

use jiff::civil::Time;
use jiff::tz::TimeZone;

use crate::clock::from_ms;

/// A person's quiet window, in minutes after local midnight. `start > end`
/// means the window spans midnight (the default 21:00–09:00).
#[derive(Debug, Clone)]
pub struct QuietWindow {
    pub time_zone: String,
    pub start_min: i64,
    pub end_min: i64,
}

impl QuietWindow {
    fn tz(&self) -> TimeZone {
        TimeZone::get(&self.time_zone).unwrap_or(TimeZone::UTC)
    }

    /// Whether a local minute of the day (0–1439) falls inside the window.
    pub fn contains_minute(&self, minute: i64) -> bool {
        if self.start_min == self.end_min {
            false
        } else if self.start_min < self.end_min {
            (self.start_min..self.end_min).contains(&minute)
        } else {
            minute >= self.start_min || minute < self.end_min
        }
    }

    /// Whether `at` falls inside the quiet window.
    pub fn is_quiet(&self, at_ms: i64) -> bool {
        let local = from_ms(at_ms).to_zoned(self.tz());
        self.contains_minute(i64::from(local.hour()) * 60 + i64::from(local.minute()))
    }

    /// `at` itself when it is outside the window, else the moment the window
    /// ends (local wall-clock `end`, on the right day, whatever the DST).
    pub fn next_allowed(&self, at_ms: i64) -> i64 {
        if !self.is_quiet(at_ms) {
            return at_ms;
        }
        let tz = self.tz();
        let local = from_ms(at_ms).to_zoned(tz.clone());
        let minute = i64::from(local.hour()) * 60 + i64::from(local.minute());
        let end = Time::new(
            i8::try_from(self.end_min / 60).unwrap_or(9),
            i8::try_from(self.end_min % 60).unwrap_or(0),
            0,
            0,
        )
        .unwrap_or(Time::midnight());
        // Inside a window that spans midnight, before midnight: it ends tomorrow.
        let date = if self.start_min > self.end_min && minute >= self.start_min {
            local.date().tomorrow().unwrap_or(local.date())
        } else {
            local.date()
        };
        date.to_datetime(end)
            .to_zoned(tz)
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(at_ms)
            .max(at_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn amsterdam() -> QuietWindow {
        QuietWindow {
            time_zone: "Europe/Amsterdam".into(),
            start_min: 21 * 60,
            end_min: 9 * 60,
        }
    }

    #[test]
    fn outside_the_window_is_now() {
        // 12:00 in Amsterdam (CET, UTC+1).
        assert_eq!(
            amsterdam().next_allowed(ms("2026-03-02T11:00:00Z")),
            ms("2026-03-02T11:00:00Z")
        );
    }

    #[test]
    fn late_evening_waits_for_the_next_morning() {
        // 22:30 CET → 09:00 CET next day = 08:00Z.
        assert_eq!(
            amsterdam().next_allowed(ms("2026-03-02T21:30:00Z")),
            ms("2026-03-03T08:00:00Z")
        );
    }

    #[test]
    fn early_morning_waits_until_nine_the_same_day() {
        // 06:00 CET → 09:00 CET = 08:00Z.
        assert_eq!(
            amsterdam().next_allowed(ms("2026-03-03T05:00:00Z")),
            ms("2026-03-03T08:00:00Z")
        );
    }

    #[test]
    fn across_the_spring_dst_change() {
        // Sat 28 Mar 2026 23:00 CET; clocks go forward on Sunday 29 Mar at 02:00.
        // The window ends at 09:00 CEST (UTC+2) = 07:00Z.
        assert_eq!(
            amsterdam().next_allowed(ms("2026-03-28T22:00:00Z")),
            ms("2026-03-29T07:00:00Z")
        );
    }

    #[test]
    fn across_the_autumn_dst_change() {
        // Sat 24 Oct 2026 23:30 CEST; clocks go back on Sunday 25 Oct at 03:00.
        // The window ends at 09:00 CET (UTC+1) = 08:00Z.
        assert_eq!(
            amsterdam().next_allowed(ms("2026-10-24T21:30:00Z")),
            ms("2026-10-25T08:00:00Z")
        );
    }

    #[test]
    fn a_daytime_window_and_no_window() {
        let nap = QuietWindow {
            time_zone: "UTC".into(),
            start_min: 13 * 60,
            end_min: 15 * 60,
        };
        assert_eq!(
            nap.next_allowed(ms("2026-03-02T14:00:00Z")),
            ms("2026-03-02T15:00:00Z")
        );
        assert_eq!(
            nap.next_allowed(ms("2026-03-02T15:00:00Z")),
            ms("2026-03-02T15:00:00Z")
        );
        let none = QuietWindow {
            time_zone: "UTC".into(),
            start_min: 0,
            end_min: 0,
        };
        assert!(!none.is_quiet(ms("2026-03-02T03:00:00Z")));
    }
}
