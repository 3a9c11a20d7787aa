//! A day range as rollup buckets. The rollups hold one bucket for all time (grain 0), one per calendar month
//! (grain 1), one per day (grain 2) and one per week from Monday (grain 3). A range is the sum of signed slices
//! of those buckets: whole months in its middle; at each end either the part inside the range or the whole
//! month minus the part outside it, whichever reads fewer rows; each such part as whole weeks with days at
//! their ends, again inside or whole-minus-outside. A range open at its start is all time minus what follows
//! its end.

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

/// What reading one month or one week bucket costs, in day buckets: a longer bucket holds more combinations
/// of owner, status and source, but far fewer than its days together (measured on the seeded tenant: a month
/// about 4.5 days' worth of rows).
const MONTH_COST: i64 = 5;
const WEEK_COST: i64 = 3;

const ALL_TIME: i16 = 0;
const MONTH: i16 = 1;
const DAY: i16 = 2;
const WEEK: i16 = 3;

fn monday(day: NaiveDate) -> NaiveDate {
    day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

fn next_monday(day: NaiveDate) -> NaiveDate {
    monday(day) + chrono::Duration::days(7)
}

/// The rough cost of reading `slices`, in day buckets.
fn cost(slices: &[Slice]) -> i64 {
    slices
        .iter()
        .map(|slice| match slice.grain {
            DAY => days(slice.from, slice.until),
            WEEK => days(slice.from, slice.until).div_euclid(7).max(1) * WEEK_COST,
            // A month, or all time (read only for ranges open at their start).
            _ => MONTH_COST,
        })
        .sum()
}

/// The cheaper of two coverings.
fn cheaper(a: Vec<Slice>, b: Vec<Slice>) -> Vec<Slice> {
    if cost(&a) <= cost(&b) { a } else { b }
}

/// At a month the range only partly covers: whether reading the part `inside` the range costs no more than the
/// whole month minus the part `outside` it.
fn inside_is_cheaper(inside: &[Slice], outside: &[Slice]) -> bool {
    cost(inside) <= MONTH_COST + cost(outside)
}

/// Slices covering the days `[from, until)` within a month or two: whole weeks, and at each end the days
/// inside or the week minus the days outside; each with `sign`.
fn weeks_and_days(from: NaiveDate, until: NaiveDate, sign: i32) -> Vec<Slice> {
    if from >= until {
        return Vec::new();
    }
    let slice = |grain, from, until, times: i32| Slice { grain, from, until, sign: sign * times };
    if monday(from) == monday(until.pred_opt().unwrap_or(until)) {
        let week = (monday(from), next_monday(from));
        let days_only = vec![slice(DAY, from, until, 1)];
        let mut whole = vec![slice(WEEK, week.0, week.1, 1)];
        whole.extend(
            [slice(DAY, week.0, from, -1), slice(DAY, until, week.1, -1)].into_iter().filter(|s| s.from < s.until),
        );
        return cheaper(days_only, whole);
    }
    let mut out = Vec::new();
    let first_week = if from == monday(from) {
        from
    } else if days(from, next_monday(from)) <= WEEK_COST + days(monday(from), from) {
        out.push(slice(DAY, from, next_monday(from), 1));
        next_monday(from)
    } else {
        out.push(slice(DAY, monday(from), from, -1));
        monday(from)
    };
    let end_week = if until == monday(until) {
        until
    } else if days(monday(until), until) <= WEEK_COST + days(until, next_monday(until)) {
        out.push(slice(DAY, monday(until), until, 1));
        monday(until)
    } else {
        out.push(slice(DAY, until, next_monday(until), -1));
        next_monday(until)
    };
    if first_week < end_week {
        out.push(slice(WEEK, first_week, end_week, 1));
    }
    out
}

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
    let month = |from, until| Slice { grain: MONTH, from, until, sign };
    if let Some(until) = until
        && month_start(from) == month_start(until.pred_opt().unwrap_or(until))
    {
        // Within one month: its days, or the month without the days around them.
        let (first, after) = (month_start(from), next_month(from));
        let inside = weeks_and_days(from, until, sign);
        let mut outside = weeks_and_days(first, from, -sign);
        outside.extend(weeks_and_days(until, after, -sign));
        if inside_is_cheaper(&inside, &outside) {
            return inside;
        }
        outside.push(month(first, after));
        return outside;
    }
    let mut out = Vec::new();
    // The first month: its days from `from`, or the whole month without the days before `from`.
    let first_month = if from.day() == 1 {
        from
    } else {
        let inside = weeks_and_days(from, next_month(from), sign);
        let outside = weeks_and_days(month_start(from), from, -sign);
        if inside_is_cheaper(&inside, &outside) {
            out.extend(inside);
            next_month(from)
        } else {
            // The whole month joins the months in the middle.
            out.extend(outside);
            month_start(from)
        }
    };
    let Some(until) = until else {
        out.push(month(first_month, LAST_DAY));
        return out;
    };
    // The last month: its days before `until`, or the whole month without the days from `until` on.
    let end_month = if until.day() == 1 {
        until
    } else {
        let inside = weeks_and_days(month_start(until), until, sign);
        let outside = weeks_and_days(until, next_month(until), -sign);
        if inside_is_cheaper(&inside, &outside) {
            out.extend(inside);
            month_start(until)
        } else {
            out.extend(outside);
            next_month(until)
        }
    };
    if first_month < end_month {
        out.push(month(first_month, end_month));
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
                    WEEK => monday(current),
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
        let around = (day("2024-10-01"), day("2026-02-28"));
        let mut starts = vec![None];
        let mut ends = vec![None, Some(day("2025-12-31"))];
        // Every start and end over three months and a year's turn, so every weekday meets every month edge.
        let mut current = day("2024-12-01");
        while current <= day("2025-03-05") {
            starts.push(Some(current));
            ends.push(Some(current));
            current += Duration::days(1);
        }
        for start in &starts {
            for end in &ends {
                let (start, end) = (*start, *end);
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
