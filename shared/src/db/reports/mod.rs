//! Reports and dashboards (contract §8): one module per family of figures. Every query is built with the
//! lists' visibility predicate (`visibility::push_scope`) and counts live records only. Lead figures are read
//! from the lead rollup (see the reports migration); projects, clients, interactions and tickets are counted
//! directly, on indexes.

pub mod activity;
pub mod dashboard;
pub mod leads;
pub mod projects;

use super::visibility::{Viewer, push_scope};
use crate::error::DomainError;
use crate::ids::TenantId;
use chrono::{Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::HashMap;
use uuid::Uuid;

/// Whose figures a report computes: the tenant, the viewer whose visibility applies, the tenant's time zone.
#[derive(Debug, Clone, Copy)]
pub struct ReportScope {
    pub tenant: TenantId,
    pub viewer: Viewer,
    pub time_zone: chrono_tz::Tz,
}

impl ReportScope {
    /// Today in the tenant's time zone.
    pub fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.time_zone).date_naive()
    }

    fn zone(&self) -> &'static str {
        self.time_zone.name()
    }

    /// ` AND <alias> is visible`, for a record whose owner column is `owner_column`.
    fn push_visible(&self, qb: &mut QueryBuilder<Postgres>, alias: &str, owner_column: &str) {
        qb.push(" AND ").push(alias).push(".deleted_at IS NULL");
        push_scope(qb, alias, owner_column, self.tenant, &self.viewer);
    }
}

/// Inclusive days in the tenant's time zone; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayRange {
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

/// The first and last day a range may name (Postgres' `date` reaches further, chrono's less).
pub const FIRST_DAY: NaiveDate = NaiveDate::from_ymd_opt(1, 1, 1).expect("a valid date");
pub const LAST_DAY: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date");

impl DayRange {
    pub fn all_time() -> DayRange {
        DayRange::default()
    }

    pub fn is_all_time(&self) -> bool {
        self.start.is_none() && self.end.is_none()
    }

    /// ` AND <column> in the range`, for a `timestamptz` column: from local midnight of the first day to local
    /// midnight after the last.
    fn push_instants(&self, qb: &mut QueryBuilder<Postgres>, column: &str, scope: &ReportScope) {
        if let Some(start) = self.start {
            qb.push(" AND ").push(column).push(" >= (").push_bind(start).push("::timestamp AT TIME ZONE ");
            qb.push_bind(scope.zone()).push(")");
        }
        if let Some(after) = self.end.and_then(|end| end.succ_opt()) {
            qb.push(" AND ").push(column).push(" < (").push_bind(after).push("::timestamp AT TIME ZONE ");
            qb.push_bind(scope.zone()).push(")");
        }
    }

    /// ` AND <column> in the range`, for a `date` column.
    fn push_dates(&self, qb: &mut QueryBuilder<Postgres>, column: &str) {
        if let Some(start) = self.start {
            qb.push(" AND ").push(column).push(" >= ").push_bind(start);
        }
        if let Some(end) = self.end {
            qb.push(" AND ").push(column).push(" <= ").push_bind(end);
        }
    }

    /// ` AND <the rollup rows that add up to the range>`: the all-time bucket without a range; otherwise the
    /// days before the first whole month, the whole months, and the days after the last whole month.
    fn push_rollup_buckets(&self, qb: &mut QueryBuilder<Postgres>, alias: &str) {
        let Some((days_before, months, days_after)) = self.rollup_pieces() else {
            qb.push(" AND ").push(alias).push(".grain = 0");
            return;
        };
        let mut first = true;
        for (grain, (from, until)) in [(2, days_before), (1, months), (2, days_after)] {
            qb.push(if first { " AND ((" } else { " OR (" });
            first = false;
            qb.push(alias).push(".grain = ").push(grain.to_string());
            qb.push(" AND ").push(alias).push(".bucket >= ").push_bind(from);
            qb.push(" AND ").push(alias).push(".bucket < ").push_bind(until).push(")");
        }
        qb.push(")");
    }

    /// Half-open `[from, until)` bucket ranges: days, then months (by their first day), then days.
    #[allow(clippy::type_complexity)]
    fn rollup_pieces(&self) -> Option<((NaiveDate, NaiveDate), (NaiveDate, NaiveDate), (NaiveDate, NaiveDate))> {
        if self.is_all_time() {
            return None;
        }
        let start = self.start.unwrap_or(FIRST_DAY);
        let end = self.end.unwrap_or(LAST_DAY);
        let after_end = end.succ_opt().unwrap_or(end);
        if start > end {
            return Some(((start, start), (start, start), (start, start)));
        }
        let first_whole_month = if start.day() == 1 { start } else { next_month(start) };
        let after_last_whole_month = if after_end.day() == 1 { after_end } else { month_start(end) };
        if first_whole_month >= after_last_whole_month {
            return Some(((start, after_end), (start, start), (start, start)));
        }
        Some((
            (start, first_whole_month),
            (first_whole_month, after_last_whole_month),
            (after_last_whole_month, after_end),
        ))
    }
}

fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

fn next_month(day: NaiveDate) -> NaiveDate {
    let (year, month) = if day.month() == 12 { (day.year() + 1, 1) } else { (day.year(), day.month() + 1) };
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(LAST_DAY)
}

/// A percentage of `part` in `whole`, rounded half away from zero to 2 decimals; 0 when `whole` is 0.
pub fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    let ratio = Decimal::from(part) * Decimal::from(100) / Decimal::from(whole);
    round2(ratio)
}

/// A decimal rounded half away from zero to 2 decimals, as a JSON number.
pub fn round2(value: Decimal) -> f64 {
    value.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero).to_f64().unwrap_or(0.0)
}

/// `sum / count`, rounded to 2 decimals; `None` when there is nothing to average.
pub fn average(sum: Decimal, count: i64) -> Option<f64> {
    (count > 0).then(|| round2(sum / Decimal::from(count)))
}

/// Every user of the tenant: id → email (reports name users by email).
pub async fn user_emails(conn: &mut PgConnection, tenant: TenantId) -> Result<HashMap<Uuid, String>, DomainError> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, email FROM users WHERE tenant_id = $1").bind(tenant).fetch_all(conn).await?;
    Ok(rows.into_iter().collect())
}

/// Whether `viewer` may ask for another user's figures (`user_id`): an admin for any user of the tenant, a
/// manager for themselves and the members of their teams; nobody else.
pub async fn may_report_on(
    conn: &mut PgConnection,
    tenant: TenantId,
    viewer: &Viewer,
    user: Uuid,
) -> Result<bool, DomainError> {
    use crate::domain::access::Scope;
    let mut qb = QueryBuilder::<Postgres>::new("SELECT EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = ");
    qb.push_bind(tenant).push(" AND u.id = ").push_bind(user);
    match viewer.scope {
        Scope::Tenant => {}
        Scope::Teams => {
            qb.push(" AND u.id IN (");
            super::visibility::push_team_members(&mut qb, tenant, viewer.user_id);
            qb.push(")");
        }
        Scope::OwnOrAssigned => return Ok(false),
    }
    qb.push(")");
    Ok(qb.build_query_scalar().fetch_one(conn).await?)
}

/// Orders users by email as people read it (case-insensitively), then by id.
pub fn email_order(a: &(Option<String>, Option<Uuid>), b: &(Option<String>, Option<Uuid>)) -> std::cmp::Ordering {
    let key =
        |user: &(Option<String>, Option<Uuid>)| (user.0.is_none(), user.0.as_deref().map(str::to_lowercase), user.1);
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("a date")
    }

    #[test]
    fn a_range_reads_days_at_its_ends_and_whole_months_between() {
        let range = DayRange { start: Some(day("2026-01-15")), end: Some(day("2026-04-10")) };
        let (before, months, after) = range.rollup_pieces().expect("pieces");
        assert_eq!(before, (day("2026-01-15"), day("2026-02-01")));
        assert_eq!(months, (day("2026-02-01"), day("2026-04-01")));
        assert_eq!(after, (day("2026-04-01"), day("2026-04-11")));
    }

    #[test]
    fn a_range_within_one_month_reads_only_days() {
        let range = DayRange { start: Some(day("2026-03-02")), end: Some(day("2026-03-30")) };
        let (before, months, after) = range.rollup_pieces().expect("pieces");
        assert_eq!(before, (day("2026-03-02"), day("2026-03-31")));
        assert!(months.0 >= months.1 && after.0 >= after.1);
    }

    #[test]
    fn whole_months_and_open_ends_need_no_days() {
        let range = DayRange { start: Some(day("2026-01-01")), end: Some(day("2026-12-31")) };
        let (before, months, after) = range.rollup_pieces().expect("pieces");
        assert!(before.0 >= before.1 && after.0 >= after.1);
        assert_eq!(months, (day("2026-01-01"), day("2027-01-01")));
        let open = DayRange { start: Some(day("2026-12-07")), end: None };
        let (before, months, _) = open.rollup_pieces().expect("pieces");
        assert_eq!(before, (day("2026-12-07"), day("2027-01-01")));
        assert_eq!(months.0, day("2027-01-01"));
    }

    #[test]
    fn rates_round_half_away_from_zero_and_are_zero_over_nothing() {
        assert_eq!(percent(1, 3), 33.33);
        assert_eq!(percent(2, 3), 66.67);
        assert_eq!(percent(1, 32), 3.13);
        assert_eq!(percent(1, 0), 0.0);
        assert_eq!(average(Decimal::ZERO, 0), None);
    }
}
