//! Time arithmetic for the silence engine, in each person's own IANA time
//! zone and correct across daylight-saving changes: a member's reminder time,
//! and a worker's working hours.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Zoned, civil};

use crate::clock::from_ms;
use crate::notifications::timing::QuietWindow;

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

fn time_of(minutes: i64) -> Time {
    let h = i8::try_from(minutes.div_euclid(60).clamp(0, 23)).unwrap_or(0);
    let m = i8::try_from(minutes.rem_euclid(60)).unwrap_or(0);
    Time::new(h, m, 0, 0).unwrap_or(Time::midnight())
}

/// The instant a local date and time happens in `zone` (a time skipped by a
/// DST change resolves to just after it).
fn at(zone: &TimeZone, date: Date, minutes: i64) -> i64 {
    date.to_datetime(time_of(minutes))
        .to_zoned(zone.clone())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(0)
}

fn local(zone: &TimeZone, ms: i64) -> Zoned {
    from_ms(ms).to_zoned(zone.clone())
}

/// When a member may be nudged, at or after `due`: at their preferred
/// reminder time if they chose one (the first at or after `due`), otherwise
/// at `due`, moved out of their quiet hours.
pub fn member_moment(due: i64, quiet: &QuietWindow, reminder_min: Option<i64>) -> i64 {
    match reminder_min {
        Some(minutes) => {
            let zone = tz(&quiet.time_zone);
            let day = local(&zone, due).date();
            let today = at(&zone, day, minutes);
            let moment = if today >= due {
                today
            } else {
                at(&zone, day.tomorrow().unwrap_or(day), minutes)
            };
            // A reminder time inside quiet hours is refused on the way in;
            // one stored before that rule still never fires in them.
            quiet.next_allowed(moment)
        }
        None => quiet.next_allowed(due),
    }
}

/// When a gentle message (a nudge, a questionnaire's ask) planned for
/// `target` may reach a member, seen at `now`: their reminder time or the
/// end of quiet hours at or after `target`; if that has passed and it is
/// quiet now, the next such moment from now; and never on the local day of
/// the last such message (`last_message_at`, the account's
/// `last_nudge_at`): one a day, across circles and kinds.
pub fn message_moment(
    target: i64,
    now: i64,
    quiet: &QuietWindow,
    reminder_min: Option<i64>,
    last_message_at: Option<i64>,
) -> i64 {
    let mut at = member_moment(target, quiet, reminder_min);
    if at <= now && quiet.is_quiet(now) {
        at = member_moment(now, quiet, reminder_min);
    }
    let zone = &quiet.time_zone;
    if let Some(last) = last_message_at
        && local_day(at.max(now), zone) == local_day(last, zone)
    {
        let next_day = local_day(last, zone)
            .tomorrow()
            .ok()
            .and_then(|d| d.to_zoned(TimeZone::get(zone).ok()?).ok())
            .map_or(last + 24 * 3_600_000, |z| z.timestamp().as_millisecond());
        at = member_moment(next_day, quiet, reminder_min);
    }
    at
}

/// The local calendar day of an instant, for "one nudge a day".
pub fn local_day(ms: i64, zone_name: &str) -> civil::Date {
    local(&tz(zone_name), ms).date()
}

/// Stored work days (`"12345"`) as ISO weekdays, 1 = Monday … 7 = Sunday.
pub fn parse_work_days(stored: &str) -> Vec<i8> {
    stored
        .bytes()
        .filter(u8::is_ascii_digit)
        .filter_map(|b| i8::try_from(b - b'0').ok())
        .collect()
}

/// A worker's working week: weekdays (1 = Monday … 7 = Sunday) and hours.
#[derive(Debug, Clone)]
pub struct WorkingHours {
    pub time_zone: String,
    pub days: Vec<i8>,
    pub start_min: i64,
    pub end_min: i64,
}

impl WorkingHours {
    fn works_on(&self, date: Date) -> bool {
        let n = match date.weekday() {
            Weekday::Monday => 1,
            Weekday::Tuesday => 2,
            Weekday::Wednesday => 3,
            Weekday::Thursday => 4,
            Weekday::Friday => 5,
            Weekday::Saturday => 6,
            Weekday::Sunday => 7,
        };
        self.days.contains(&n)
    }

    fn valid(&self) -> bool {
        !self.days.is_empty() && self.start_min < self.end_min
    }

    /// `t` when it falls inside working hours, else the next start of work.
    pub fn next_working(&self, t: i64) -> i64 {
        if !self.valid() {
            return t;
        }
        let zone = tz(&self.time_zone);
        let mut date = local(&zone, t).date();
        for _ in 0..15 {
            if self.works_on(date) {
                let (start, end) = (
                    at(&zone, date, self.start_min),
                    at(&zone, date, self.end_min),
                );
                if t < end {
                    return t.max(start);
                }
            }
            date = date.tomorrow().unwrap_or(date);
        }
        t
    }

    /// The instant when `hours` working hours have passed since `from`.
    pub fn add_working_hours(&self, from: i64, hours: i64) -> i64 {
        if !self.valid() {
            return from + hours * 3_600_000;
        }
        let zone = tz(&self.time_zone);
        let mut left = hours * 3_600_000;
        let mut t = self.next_working(from);
        for _ in 0..400 {
            let date = local(&zone, t).date();
            let end = at(&zone, date, self.end_min);
            let available = end - t;
            if left <= available {
                return t + left;
            }
            left -= available;
            t = self.next_working(end);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn office() -> WorkingHours {
        WorkingHours {
            time_zone: "Europe/Amsterdam".into(),
            days: vec![1, 2, 3, 4, 5],
            start_min: 540,
            end_min: 1020,
        }
    }

    fn quiet() -> QuietWindow {
        QuietWindow {
            time_zone: "Europe/Amsterdam".into(),
            start_min: 21 * 60,
            end_min: 9 * 60,
        }
    }

    #[test]
    fn the_preferred_reminder_time_wins_over_the_due_time() {
        // Due Tuesday 14:00 CET; prefers 10:30 → Wednesday 10:30 CET.
        assert_eq!(
            member_moment(ms("2026-03-03T13:00:00Z"), &quiet(), Some(630)),
            ms("2026-03-04T09:30:00Z")
        );
        // Due 08:00 CET; prefers 10:30 → the same day.
        assert_eq!(
            member_moment(ms("2026-03-03T07:00:00Z"), &quiet(), Some(630)),
            ms("2026-03-03T09:30:00Z")
        );
        // No preference: out of quiet hours.
        assert_eq!(
            member_moment(ms("2026-03-03T22:00:00Z"), &quiet(), None),
            ms("2026-03-04T08:00:00Z")
        );
    }

    #[test]
    fn reminder_times_follow_the_wall_clock_across_dst() {
        // Saturday 24 Oct 2026 11:00 CEST due; prefers 10:00 → Sunday 10:00 CET (after the change) = 09:00Z.
        assert_eq!(
            member_moment(ms("2026-10-24T09:00:00Z"), &quiet(), Some(600)),
            ms("2026-10-25T09:00:00Z")
        );
    }

    #[test]
    fn work_starts_on_the_next_working_day() {
        // Saturday noon → Monday 09:00 CET.
        assert_eq!(
            office().next_working(ms("2026-03-07T11:00:00Z")),
            ms("2026-03-09T08:00:00Z")
        );
        // Tuesday 20:00 → Wednesday 09:00.
        assert_eq!(
            office().next_working(ms("2026-03-03T19:00:00Z")),
            ms("2026-03-04T08:00:00Z")
        );
        // Inside hours: now.
        assert_eq!(
            office().next_working(ms("2026-03-03T10:00:00Z")),
            ms("2026-03-03T10:00:00Z")
        );
    }

    #[test]
    fn working_hours_add_up_over_nights_and_weekends() {
        // Friday 15:00 CET + 8 working hours: 2 on Friday, 6 on Monday → Monday 15:00 CET.
        assert_eq!(
            office().add_working_hours(ms("2026-03-06T14:00:00Z"), 8),
            ms("2026-03-09T14:00:00Z")
        );
        // Across the autumn DST change: Friday 23 Oct 16:00 CEST + 8 → Monday 26 Oct 16:00 CET = 15:00Z.
        assert_eq!(
            office().add_working_hours(ms("2026-10-23T14:00:00Z"), 8),
            ms("2026-10-26T15:00:00Z")
        );
    }
}
