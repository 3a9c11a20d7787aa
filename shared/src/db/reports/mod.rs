//! Reports and dashboards (contract §8): one module per family of figures. Every query is built with the
//! lists' visibility predicate (`visibility::push_scope`) and counts live records only. Lead figures are read
//! from the lead rollup (see the reports migration); projects, clients, interactions and tickets are counted
//! directly, on indexes.

pub mod activity;
pub mod dashboard;
pub mod leads;
pub mod projects;
pub mod slices;

use super::visibility::{Viewer, push_scope};
use crate::error::DomainError;
use crate::ids::TenantId;
use chrono::{NaiveDate, Utc};
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

    #[test]
    fn rates_round_half_away_from_zero_and_are_zero_over_nothing() {
        assert_eq!(percent(1, 3), 33.33);
        assert_eq!(percent(2, 3), 66.67);
        assert_eq!(percent(1, 32), 3.13);
        assert_eq!(percent(1, 0), 0.0);
        assert_eq!(average(Decimal::ZERO, 0), None);
    }
}
