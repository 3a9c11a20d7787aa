//! When a schedule fires: a standard 5-field cron expression read in a time zone.
//!
//! croner parses the expression and matches it against *local wall-clock times* (naive date-times). Turning a
//! local time into an instant is done here, because that is where daylight saving time bites:
//! - a local time the change skips (02:30 on a spring-forward night in Berlin) fires at the first minute
//!   after the gap (03:00), once, however many skipped times the expression names;
//! - a local time that happens twice (01:30 on a fall-back night in New York) fires once, at its first
//!   occurrence; during the repeated hour nothing fires a second time.
//!
//! Every instant this returns is a whole minute, so (schedule, instant) keys a run exactly.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed schedule: its expression and zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

/// How far ahead a schedule is searched; an expression that names no time in it (`0 0 30 2 *`) never fires.
const HORIZON_DAYS: i64 = 366 * 5;

impl CronSchedule {
    /// Parses a standard 5-field expression (minute hour day-of-month month day-of-week; names, ranges, steps,
    /// `L`, `#` and `W`), refusing seconds and years, and one that never fires.
    pub fn parse(expression: &str, zone: Tz) -> Result<Self, String> {
        let trimmed = expression.trim();
        if trimmed.split_whitespace().count() != 5 {
            return Err("must be a 5-field cron expression: minute hour day-of-month month day-of-week".into());
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|error| format!("is not a valid cron expression: {error}"))?;
        let schedule = Self { cron, zone };
        if schedule.next_after(Utc::now()).is_none() {
            return Err("names no time in the next five years".into());
        }
        Ok(schedule)
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first firing instant strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let limit = after + Duration::days(HORIZON_DAYS);
        // Wall-clock times are searched from the local time of `after`; in a repeated hour that local time
        // maps back to its first occurrence, which may lie before `after`, so such candidates are passed over.
        let mut local = after.with_timezone(&self.zone).naive_local();
        loop {
            let candidate = self.cron.find_next_occurrence(&local, false).ok()?;
            let instant = self.instant_of(candidate)?;
            if instant > after {
                return Some(instant);
            }
            if instant > limit {
                return None;
            }
            local = candidate;
        }
    }

    /// The latest firing instant at or before `at` (for catch-up).
    pub fn latest_at_or_before(&self, at: DateTime<Utc>, not_before: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut latest = None;
        let mut cursor = not_before - Duration::minutes(1);
        // Walks forward from a known lower bound: simple, and bounded by how many times fire in between,
        // which the caller keeps small by starting at the schedule's own next_run_at.
        for _ in 0..100_000 {
            match self.next_after(cursor) {
                Some(next) if next <= at => {
                    latest = Some(next);
                    cursor = next;
                }
                _ => break,
            }
        }
        latest
    }

    /// The instant a local wall-clock time fires at: itself, its first occurrence when repeated, or the first
    /// minute after a gap.
    fn instant_of(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let local = local.with_second(0)?.with_nanosecond(0)?;
        match self.zone.from_local_datetime(&local) {
            LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            LocalResult::None => {
                // Inside a gap: step minute by minute to its end (gaps last at most a few hours).
                let mut probe = local;
                for _ in 0..(24 * 60) {
                    probe += Duration::minutes(1);
                    if let Some(at) = self.zone.from_local_datetime(&probe).earliest() {
                        return Some(at.with_timezone(&Utc));
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("an RFC 3339 time").with_timezone(&Utc)
    }

    fn firings(expression: &str, zone: Tz, from: &str, count: usize) -> Vec<String> {
        let schedule = CronSchedule::parse(expression, zone).expect("a valid expression");
        let mut at = utc(from);
        let mut out = Vec::new();
        for _ in 0..count {
            at = schedule.next_after(at).expect("a next time");
            out.push(at.with_timezone(&zone).to_rfc3339());
        }
        out
    }

    #[test]
    fn berlin_spring_forward_fires_a_skipped_time_at_the_first_minute_after_the_gap() {
        // 2025-03-30: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
        let got = firings("30 2 * * *", chrono_tz::Europe::Berlin, "2025-03-28T12:00:00Z", 3);
        assert_eq!(got, ["2025-03-29T02:30:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"]);
    }

    #[test]
    fn berlin_spring_forward_every_minute_fires_once_for_the_whole_gap() {
        let got = firings("* * * * *", chrono_tz::Europe::Berlin, "2025-03-30T00:58:00Z", 4);
        // 01:59 CET, then the skipped 02:00..02:59 all land on 03:00 CEST, once; then 03:01.
        assert_eq!(
            got,
            [
                "2025-03-30T01:59:00+01:00",
                "2025-03-30T03:00:00+02:00",
                "2025-03-30T03:01:00+02:00",
                "2025-03-30T03:02:00+02:00"
            ]
        );
    }

    #[test]
    fn berlin_fall_back_fires_a_repeated_time_once() {
        // 2025-10-26: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        let got = firings("30 2 * * *", chrono_tz::Europe::Berlin, "2025-10-25T12:00:00Z", 3);
        assert_eq!(got, ["2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00", "2025-10-28T02:30:00+01:00"]);
    }

    #[test]
    fn new_york_spring_forward_fires_a_skipped_time_at_three() {
        // 2025-03-09: 02:00 EST becomes 03:00 EDT.
        let got = firings("30 2 * * *", chrono_tz::America::New_York, "2025-03-08T12:00:00Z", 3);
        assert_eq!(got, ["2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00", "2025-03-11T02:30:00-04:00"]);
    }

    #[test]
    fn new_york_fall_back_fires_a_repeated_time_once_and_the_hour_after_carries_on() {
        // 2025-11-02: 02:00 EDT becomes 01:00 EST; 01:30 happens twice.
        let got = firings("30 1 * * *", chrono_tz::America::New_York, "2025-11-01T12:00:00Z", 2);
        assert_eq!(got, ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]);
        // Hourly: 01:00 fires once (EDT), the repeated 01:00 EST does not, 02:00 EST does.
        let hourly = firings("0 * * * *", chrono_tz::America::New_York, "2025-11-02T04:30:00Z", 3);
        assert_eq!(hourly, ["2025-11-02T01:00:00-04:00", "2025-11-02T02:00:00-05:00", "2025-11-02T03:00:00-05:00"]);
    }

    #[test]
    fn a_search_from_inside_the_repeated_hour_never_goes_back() {
        let schedule = CronSchedule::parse("*/15 * * * *", chrono_tz::America::New_York).expect("valid");
        // 01:20 EST, the second pass: the next is 02:00 EST, not the 01:30 EDT an hour earlier.
        let next = schedule.next_after(utc("2025-11-02T06:20:00Z")).expect("a next time");
        assert_eq!(next, utc("2025-11-02T07:00:00Z"));
    }

    #[test]
    fn weekdays_are_standard_and_expressions_are_checked() {
        // 1 is Monday, 0 and 7 Sunday (croner is POSIX here; the `cron` crate counts from Sunday = 1).
        let got = firings("0 9 * * 1", chrono_tz::UTC, "2025-06-04T00:00:00Z", 1);
        assert_eq!(got, ["2025-06-09T09:00:00+00:00"]);
        assert_eq!(firings("0 9 * * 7", chrono_tz::UTC, "2025-06-04T00:00:00Z", 1), ["2025-06-08T09:00:00+00:00"]);
        for bad in ["", "* * * *", "0 * * * * *", "61 * * * *", "0 0 30 2 *", "every day"] {
            assert!(CronSchedule::parse(bad, chrono_tz::UTC).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn catch_up_finds_the_latest_missed_time() {
        let schedule = CronSchedule::parse("* * * * *", chrono_tz::UTC).expect("valid");
        let latest = schedule.latest_at_or_before(utc("2025-06-04T10:10:30Z"), utc("2025-06-04T10:00:00Z"));
        assert_eq!(latest, Some(utc("2025-06-04T10:10:00Z")));
    }
}
