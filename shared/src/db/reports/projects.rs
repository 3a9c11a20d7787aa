//! Project figures: by status, revenue by client, performance and the revenue forecast. All-time figures come
//! from the project rollup (plus its pending deltas); a date range counts the visible live projects in it
//! directly, by index (a range holds few of a tenant's projects). All-time revenue by client comes from
//! `client_revenue`, kept per audience (the tenant, a user, a team).

use super::{DayRange, ReportScope, average, round2};
use crate::domain::access::Scope;
use crate::domain::enums::ProjectStatus;
use crate::error::DomainError;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use utoipa::ToSchema;
use uuid::Uuid;

const OWNER: &str = "assigned_to_user_id";

/// The project rollup and its pending deltas, read as one table in one statement.
const PROJECT_FIGURES: &str = "(SELECT tenant_id, created_by, assigned_to_user_id, status, close_month, projects, valued, \
     value_sum, timed, duration_days FROM project_rollup \
     UNION ALL SELECT tenant_id, created_by, assigned_to_user_id, status, close_month, projects, valued, value_sum, \
     timed, duration_days FROM project_rollup_deltas) r";

/// `SELECT ... FROM <the rollup> WHERE <visible>`, for all-time figures.
pub(super) fn visible_rollup(select: &str, scope: &ReportScope) -> QueryBuilder<Postgres> {
    let mut qb = QueryBuilder::new(format!("SELECT {select} FROM {PROJECT_FIGURES} WHERE r.tenant_id = "));
    qb.push_bind(scope.tenant);
    super::push_scope(&mut qb, "r", OWNER, scope.tenant, &scope.viewer);
    qb
}

/// `SELECT ... FROM projects p WHERE <visible live> AND <created in range>`, for the caller to go on.
fn visible_projects(select: &str, scope: &ReportScope) -> QueryBuilder<Postgres> {
    let mut qb = QueryBuilder::new(format!("SELECT {select} FROM projects p WHERE p.tenant_id = "));
    qb.push_bind(scope.tenant);
    scope.push_visible(&mut qb, "p", OWNER);
    qb
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectStatusFigures {
    #[schema(value_type = ProjectStatus)]
    pub status: String,
    pub count: i64,
    /// The sum of the projects' values (a project without a value adds 0).
    pub total_value: f64,
}

/// Projects created in `range` per status: every status in contract order, zeros included.
pub async fn by_status(
    conn: &mut PgConnection,
    scope: &ReportScope,
    range: DayRange,
) -> Result<Vec<ProjectStatusFigures>, DomainError> {
    let mut qb = if range.is_all_time() {
        let mut qb = visible_rollup("r.status, sum(r.projects)::bigint, COALESCE(sum(r.value_sum), 0)", scope);
        qb.push(" GROUP BY r.status");
        qb
    } else {
        let mut qb = visible_projects("p.status, count(*), COALESCE(sum(p.value), 0)", scope);
        range.push_instants(&mut qb, "p.created_at", scope);
        qb.push(" GROUP BY p.status");
        qb
    };
    let rows: Vec<(String, i64, Decimal)> = qb.build_query_as().fetch_all(conn).await?;
    Ok(ProjectStatus::ALL
        .iter()
        .map(|status| {
            let row = rows.iter().find(|row| row.0 == status.as_str());
            ProjectStatusFigures {
                status: status.as_str().to_owned(),
                count: row.map_or(0, |row| row.1),
                total_value: round2(row.map_or(Decimal::ZERO, |row| row.2)),
            }
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevenueByClientReport {
    pub clients: Vec<ClientRevenue>,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ClientRevenue {
    pub client_id: Uuid,
    pub client_name: String,
    /// Projects that are not cancelled.
    pub total_projects: i64,
    /// won_value + pending_value.
    pub total_value: f64,
    /// Completed projects' values.
    pub won_value: f64,
    /// Active and pending projects' values.
    pub pending_value: f64,
}

/// Non-cancelled projects created in `range`, per client, by total value descending, then client name.
pub async fn revenue_by_client(
    conn: &mut PgConnection,
    scope: &ReportScope,
    range: DayRange,
    limit: i64,
) -> Result<RevenueByClientReport, DomainError> {
    if range.is_all_time()
        && let Some(audience) = revenue_audience(conn, scope).await?
    {
        return kept_revenue_by_client(conn, scope, audience, limit).await;
    }
    // Totals per client first, names only for the clients that make the page.
    let mut qb = QueryBuilder::<Postgres>::new("WITH per_client AS (");
    qb.push(
        "SELECT p.client_id, count(*) AS total_projects, COALESCE(sum(p.value), 0) AS total_value, \
         COALESCE(sum(p.value) FILTER (WHERE p.status = 'completed'), 0) AS won_value, \
         COALESCE(sum(p.value) FILTER (WHERE p.status IN ('active', 'pending')), 0) AS pending_value \
         FROM projects p WHERE p.tenant_id = ",
    );
    qb.push_bind(scope.tenant).push(" AND p.status <> 'cancelled' AND p.client_id IS NOT NULL");
    scope.push_visible(&mut qb, "p", OWNER);
    range.push_instants(&mut qb, "p.created_at", scope);
    // Names only for the page: the clients at or above the page's last total (ties on it are ordered by name).
    qb.push(
        " GROUP BY p.client_id), \
         cutoff AS (SELECT total_value FROM per_client ORDER BY total_value DESC LIMIT 1 OFFSET ",
    );
    qb.push_bind(limit - 1).push(
        ") SELECT x.client_id, c.name AS client_name, x.total_projects, round(x.total_value, 2)::float8 AS total_value, \
         round(x.won_value, 2)::float8 AS won_value, round(x.pending_value, 2)::float8 AS pending_value \
         FROM per_client x JOIN clients c ON c.tenant_id = ",
    );
    qb.push_bind(scope.tenant).push(" AND c.id = x.client_id");
    qb.push(" WHERE NOT EXISTS (SELECT 1 FROM cutoff) OR x.total_value >= (SELECT total_value FROM cutoff)");
    qb.push(" ORDER BY x.total_value DESC, c.name, x.client_id LIMIT ").push_bind(limit);
    Ok(RevenueByClientReport { clients: qb.build_query_as().fetch_all(conn).await? })
}

/// Whose rows of `client_revenue` hold exactly what the viewer sees (see the report speed migration): the
/// tenant's for an admin, the user's own for sales and readonly (and a report's `user_id`), the team's for a
/// manager of one team, the manager's own for a manager of none. `None` for a manager of several teams.
async fn revenue_audience(conn: &mut PgConnection, scope: &ReportScope) -> Result<Option<(i16, Uuid)>, DomainError> {
    let user = scope.viewer.user_id.as_uuid();
    Ok(match scope.viewer.scope {
        Scope::Tenant => Some((0, scope.tenant.as_uuid())),
        Scope::OwnOrAssigned => Some((1, user)),
        Scope::Teams => {
            let teams: Vec<Uuid> =
                sqlx::query_scalar("SELECT team_id FROM user_teams WHERE tenant_id = $1 AND user_id = $2 LIMIT 2")
                    .bind(scope.tenant)
                    .bind(user)
                    .fetch_all(&mut *conn)
                    .await?;
            match teams.as_slice() {
                [] => Some((1, user)),
                [team] => Some((2, *team)),
                _ => None,
            }
        }
    })
}

/// All-time revenue by client from the audience's kept totals: the top of its index, names joined per row.
async fn kept_revenue_by_client(
    conn: &mut PgConnection,
    scope: &ReportScope,
    (audience, audience_id): (i16, Uuid),
    limit: i64,
) -> Result<RevenueByClientReport, DomainError> {
    // An equality on every key column before total_value: the top index hands rows over in report order, and
    // the sort only orders ties by name. (No filter on total_value: under row-level security numeric's `>=`,
    // not leakproof, runs after the policy as a filter over every row instead of bounding the index scan.)
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT r.client_id, c.name AS client_name, r.projects::bigint AS total_projects, \
         round(r.total_value, 2)::float8 AS total_value, round(r.won_value, 2)::float8 AS won_value, \
         round(r.total_value - r.won_value, 2)::float8 AS pending_value \
         FROM client_revenue r JOIN clients c ON c.tenant_id = r.tenant_id AND c.id = r.client_id \
         WHERE r.tenant_id = ",
    );
    qb.push_bind(scope.tenant).push(" AND r.audience = ").push_bind(audience);
    qb.push(" AND r.audience_id = ").push_bind(audience_id);
    qb.push(" AND r.projects > 0 ORDER BY r.total_value DESC, c.name, r.client_id LIMIT ").push_bind(limit);
    Ok(RevenueByClientReport { clients: qb.build_query_as().fetch_all(conn).await? })
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectPerformanceReport {
    pub summary: ProjectSummary,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectSummary {
    pub total_projects: i64,
    /// Completed.
    pub won: i64,
    /// Cancelled.
    pub lost: i64,
    /// Active and pending.
    pub pending: i64,
    /// won / total_projects, in percent.
    pub win_rate: f64,
    /// The average value of the projects that have one; `null` when none has.
    pub avg_value: Option<f64>,
    /// close_date − start_date in days, averaged over completed projects with both dates; `null` when none.
    pub avg_duration_days: Option<f64>,
}

pub async fn performance(
    conn: &mut PgConnection,
    scope: &ReportScope,
    range: DayRange,
) -> Result<ProjectPerformanceReport, DomainError> {
    let mut qb = if range.is_all_time() {
        visible_rollup(
            "COALESCE(sum(r.projects), 0)::bigint, \
             COALESCE(sum(r.projects) FILTER (WHERE r.status = 'completed'), 0)::bigint, \
             COALESCE(sum(r.projects) FILTER (WHERE r.status = 'cancelled'), 0)::bigint, \
             COALESCE(sum(r.projects) FILTER (WHERE r.status IN ('active', 'pending')), 0)::bigint, \
             COALESCE(sum(r.valued), 0)::bigint, COALESCE(sum(r.value_sum), 0), COALESCE(sum(r.timed), 0)::bigint, \
             COALESCE(sum(r.duration_days), 0)::bigint",
            scope,
        )
    } else {
        let mut qb = visible_projects(
            "count(*), count(*) FILTER (WHERE p.status = 'completed'), count(*) FILTER (WHERE p.status = 'cancelled'), \
         count(*) FILTER (WHERE p.status IN ('active', 'pending')), count(p.value), COALESCE(sum(p.value), 0), \
         count(*) FILTER (WHERE p.status = 'completed' AND p.start_date IS NOT NULL AND p.close_date IS NOT NULL), \
         COALESCE(sum(p.close_date - p.start_date) FILTER (WHERE p.status = 'completed'), 0)::bigint",
            scope,
        );
        range.push_instants(&mut qb, "p.created_at", scope);
        qb
    };
    #[allow(clippy::type_complexity)]
    let row: (i64, i64, i64, i64, i64, Decimal, i64, i64) = qb.build_query_as().fetch_one(conn).await?;
    let (total, won, lost, pending, valued, value_sum, timed, days) = row;
    Ok(ProjectPerformanceReport {
        summary: ProjectSummary {
            total_projects: total,
            won,
            lost,
            pending,
            win_rate: super::percent(won, total),
            avg_value: average(value_sum, valued),
            avg_duration_days: average(Decimal::from(days), timed),
        },
    })
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevenueForecastReport {
    pub forecast: Forecast,
    pub by_month: Vec<MonthForecast>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Forecast {
    /// The values of all projects that are not cancelled, unweighted.
    pub total_pipeline_value: f64,
    /// won_value + pending_value.
    pub weighted_forecast: f64,
    /// Completed projects' values (weight 1.0).
    pub won_value: f64,
    /// Active projects' values × 0.6 plus pending projects' values × 0.3.
    pub pending_value: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthForecast {
    /// `YYYY-MM` of the projects' close date.
    pub month: String,
    pub weighted_forecast: f64,
}

/// The weight of a project's value in the forecast.
fn weight(status: &str) -> Decimal {
    match status {
        "completed" => Decimal::ONE,
        "active" => Decimal::new(6, 1),
        "pending" => Decimal::new(3, 1),
        _ => Decimal::ZERO,
    }
}

/// Non-cancelled projects closing in `range` (any close date, or none, without a range).
pub async fn revenue_forecast(
    conn: &mut PgConnection,
    scope: &ReportScope,
    range: DayRange,
) -> Result<RevenueForecastReport, DomainError> {
    let mut qb = if range.is_all_time() {
        let mut qb = visible_rollup(
            "to_char(r.close_month, 'YYYY-MM') AS month, r.status, COALESCE(sum(r.value_sum), 0)",
            scope,
        );
        qb.push(" AND r.status <> 'cancelled'");
        qb
    } else {
        let mut qb =
            visible_projects("to_char(p.close_date, 'YYYY-MM') AS month, p.status, COALESCE(sum(p.value), 0)", scope);
        qb.push(" AND p.status <> 'cancelled'");
        range.push_dates(&mut qb, "p.close_date");
        qb
    };
    qb.push(" GROUP BY 1, 2 ORDER BY 1");
    let rows: Vec<(Option<String>, String, Decimal)> = qb.build_query_as().fetch_all(conn).await?;
    let (mut total, mut won, mut pending) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    let mut months: Vec<(String, Decimal)> = Vec::new();
    for (month, status, value) in rows {
        total += value;
        let weighted = value * weight(&status);
        if status == "completed" {
            won += weighted;
        } else {
            pending += weighted;
        }
        if let Some(month) = month {
            match months.last_mut() {
                Some((last, sum)) if *last == month => *sum += weighted,
                _ => months.push((month, weighted)),
            }
        }
    }
    Ok(RevenueForecastReport {
        forecast: Forecast {
            total_pipeline_value: round2(total),
            weighted_forecast: round2(won + pending),
            won_value: round2(won),
            pending_value: round2(pending),
        },
        by_month: months
            .into_iter()
            .map(|(month, weighted)| MonthForecast { month, weighted_forecast: round2(weighted) })
            .collect(),
    })
}
