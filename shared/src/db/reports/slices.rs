//! A day range as rollup buckets. The rollups hold one bucket for all time (grain 0), one per calendar month
//! (grain 1) and one per day (grain 2). A range is the sum of signed slices of those buckets: whole months in
//! its middle, and at each end either the days inside the range or the whole month minus the days outside it,
//! whichever reads fewer rows. A range open at its start is all time minus what follows its end.

use super::{DayRange, FIRST_DAY, LAST_DAY};
use chrono::{Datelike, NaiveDate};
use sqlx::{Postgres, QueryBuilder};

/// The buckets of `grain` in `[from, until)`, added (`sign` 1) or taken away (-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub grain: i16,
    pub from: NaiveDate,
    pub until: NaiveDate,
    pub sign: i32,
}

/// What reading one month bucket costs, in day buckets: a month holds several days' combinations of owner,
/// status and source (measured on the seeded tenant: about 4.5 days' worth of rows).
const MONTH_COST: i64 = 4;

const ALL_TIME: i16 = 0;
const MONTH: i16 = 1;
const DAY: i16 = 2;

fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

fn next_month(day: NaiveDate) -> NaiveDate {
    let (year, month) = if day.month() == 12 { (day.year() + 1, 1) } else { (day.year(), day.month() + 1) };
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(LAST_DAY)
}

fn days(from: NaiveDate, until: NaiveDate) -> i64 {
    (until - from).num_days()
}

/// The slices whose signed sum is exactly the days of `range`.
pub fn slices(range: DayRange) -> Vec<Slice> {
    let after = |end: NaiveDate| end.succ_opt().unwrap_or(LAST_DAY);
    match (range.start, range.end) {
        (None, None) => vec![Slice { grain: ALL_TIME, from: FIRST_DAY, until: LAST_DAY, sign: 1 }],
        (Some(start), Some(end)) if start > end => Vec::new(),
        (Some(start), end) => cover(start, end.map(after), 1),
        (None, Some(end)) => {
            let mut slices = vec![Slice { grain: ALL_TIME, from: FIRST_DAY, until: LAST_DAY, sign: 1 }];
            slices.extend(cover(after(end), None, -1));
            slices
        }
    }
}

/// Slices covering the days `[from, until)` (`until` open: every day from `from` on), each with `sign`.
fn cover(from: NaiveDate, until: Option<NaiveDate>, sign: i32) -> Vec<Slice> {
    let slice = |grain, from, until, times: i32| Slice { grain, from, until, sign: sign * times };
    let mut out = Vec::new();
    if let Some(until) = until
        && month_start(from) == month_start(until.pred_opt().unwrap_or(until))
    {
        // Within one month: its days, or the month without the days around them.
        let (first, after) = (month_start(from), next_month(from));
        let outside = days(first, from) + days(until, after);
        if days(from, until) <= MONTH_COST + outside {
            out.push(slice(DAY, from, until, 1));
        } else {
            out.push(slice(MONTH, first, after, 1));
            out.push(slice(DAY, first, from, -1));
            out.push(slice(DAY, until, after, -1));
        }
        return out.into_iter().filter(|s| s.from < s.until).collect();
    }
    // The first month: its days from `from`, or the whole month without the days before `from`.
    let first_month = if from.day() == 1 {
        from
    } else if days(from, next_month(from)) <= MONTH_COST + days(month_start(from), from) {
        out.push(slice(DAY, from, next_month(from), 1));
        next_month(from)
    } else {
        out.push(slice(DAY, month_start(from), from, -1));
        month_start(from)
    };
    let Some(until) = until else {
        out.push(slice(MONTH, first_month, LAST_DAY, 1));
        return out;
    };
    // The last month: its days before `until`, or the whole month without the days from `until` on.
    let end_month = if until.day() == 1 {
        until
    } else if days(month_start(until), until) <= MONTH_COST + days(until, next_month(until)) {
        out.push(slice(DAY, month_start(until), until, 1));
        month_start(until)
    } else {
        out.push(slice(DAY, until, next_month(until), -1));
        next_month(until)
    };
    if first_month < end_month {
        out.push(slice(MONTH, first_month, end_month, 1));
    }
    out
}

fn push_slice(qb: &mut QueryBuilder<Postgres>, alias: &str, slice: &Slice) {
    qb.push("(").push(alias).push(".grain = ").push_bind(slice.grain);
    qb.push(" AND ").push(alias).push(".bucket >= ").push_bind(slice.from);
    qb.push(" AND ").push(alias).push(".bucket < ").push_bind(slice.until).push(")");
}

/// ` AND <alias>'s bucket is in one of the slices of `range``. The slices never overlap, so each row is in at
/// most one; written as one OR (not a join to a VALUES list) so Postgres reads each slice by index.
pub fn push_filter(qb: &mut QueryBuilder<Postgres>, alias: &str, slices: &[Slice]) {
    if slices.is_empty() {
        qb.push(" AND false");
        return;
    }
    for (index, slice) in slices.iter().enumerate() {
        qb.push(if index == 0 { " AND (" } else { " OR " });
        push_slice(qb, alias, slice);
    }
    qb.push(")");
}

/// The sign a row of `slices` counts with: -1 in a slice taken away, else 1.
pub fn push_sign(qb: &mut QueryBuilder<Postgres>, alias: &str, slices: &[Slice]) {
    let negative: Vec<&Slice> = slices.iter().filter(|slice| slice.sign < 0).collect();
    if negative.is_empty() {
        qb.push("1");
        return;
    }
    qb.push("(CASE WHEN ");
    for (index, slice) in negative.into_iter().enumerate() {
        if index > 0 {
            qb.push(" OR ");
        }
        push_slice(qb, alias, slice);
    }
    qb.push(" THEN -1 ELSE 1 END)");
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("a date")
    }

    /// Which days the slices count, and how often: every day of the range exactly once, no other day at all.
    fn counted_days(range: DayRange, around: (NaiveDate, NaiveDate)) -> Vec<(NaiveDate, i32)> {
        let slices = slices(range);
        let mut out = Vec::new();
        let mut current = around.0;
        while current <= around.1 {
            let mut times = 0;
            for slice in &slices {
                let bucket = match slice.grain {
                    ALL_TIME => FIRST_DAY,
                    MONTH => month_start(current),
                    _ => current,
                };
                if bucket >= slice.from && bucket < slice.until {
                    times += slice.sign;
                }
            }
            out.push((current, times));
            current += Duration::days(1);
        }
        out
    }

    #[test]
    fn every_range_counts_each_of_its_days_once_and_nothing_else() {
        let around = (day("2024-11-01"), day("2026-03-31"));
        let starts =
            [None, Some(day("2025-01-01")), Some(day("2025-01-02")), Some(day("2025-01-29")), Some(day("2025-02-14"))];
        let ends = [
            None,
            Some(day("2025-01-31")),
            Some(day("2025-02-03")),
            Some(day("2025-02-27")),
            Some(day("2025-06-15")),
            Some(day("2025-01-01")),
            Some(day("2025-12-31")),
        ];
        for start in starts {
            for end in ends {
                let range = DayRange { start, end };
                for (date, times) in counted_days(range, around) {
                    let inside = start.is_none_or(|s| date >= s) && end.is_none_or(|e| date <= e);
                    assert_eq!(times, i32::from(inside), "{range:?} counts {date} {times} times");
                }
            }
        }
    }

    #[test]
    fn the_ends_read_the_cheaper_of_days_and_month_minus_days() {
        // 2 to 28 February: the month without two days, not 27 days.
        let near_whole = slices(DayRange { start: Some(day("2025-02-02")), end: Some(day("2025-02-27")) });
        assert_eq!(near_whole.iter().filter(|s| s.grain == DAY).map(|s| days(s.from, s.until)).sum::<i64>(), 2);
        // A few days: just the days.
        let few = slices(DayRange { start: Some(day("2025-02-10")), end: Some(day("2025-02-12")) });
        assert_eq!(few, vec![Slice { grain: DAY, from: day("2025-02-10"), until: day("2025-02-13"), sign: 1 }]);
        // No range: the all-time bucket alone.
        assert_eq!(slices(DayRange::default()).len(), 1);
        // Backwards: nothing.
        assert!(slices(DayRange { start: Some(day("2025-02-10")), end: Some(day("2025-02-01")) }).is_empty());
    }
}
