//! People and follow-through: user activity, follow-ups, client retention and upcoming tasks.

use super::{DayRange, ReportScope, percent};
use crate::domain::access::Scope;
use crate::domain::enums::ClientStatus;
use crate::error::DomainError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserActivityReport {
    pub users: Vec<UserActivity>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserActivity {
    pub user_id: Uuid,
    pub user_email: String,
    /// Leads created in the range and assigned to the user.
    pub assigned_leads: i64,
    /// Clients created in the range and assigned to the user.
    pub assigned_clients: i64,
    /// Interactions whose `user_id` is the user, by contact date in the range.
    pub interactions_logged: i64,
    /// Projects the user created in the range.
    pub projects_created: i64,
}

/// The active users a report lists for the viewer: the tenant's, a manager's team members and the manager,
/// or the viewer alone; by email.
pub async fn users_in_scope(conn: &mut PgConnection, scope: &ReportScope) -> Result<Vec<(Uuid, String)>, DomainError> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT u.id, u.email FROM users u WHERE u.tenant_id = ");
    qb.push_bind(scope.tenant).push(" AND u.is_active");
    match scope.viewer.scope {
        Scope::Tenant => {}
        Scope::Teams => {
            qb.push(" AND u.id IN (");
            crate::db::visibility::push_team_members(&mut qb, scope.tenant, scope.viewer.user_id);
            qb.push(")");
        }
        Scope::OwnOrAssigned => {
            qb.push(" AND u.id = ").push_bind(scope.viewer.user_id);
        }
    }
    let mut users: Vec<(Uuid, String)> = qb.build_query_as().fetch_all(conn).await?;
    users.sort_by(|a, b| a.1.to_lowercase().cmp(&b.1.to_lowercase()).then(a.0.cmp(&b.0)));
    Ok(users)
}

/// The activity rollup's metrics (see the reports migration).
const ASSIGNED_LEADS: i16 = 1;
const ASSIGNED_CLIENTS: i16 = 2;
const INTERACTIONS_LOGGED: i16 = 3;
const PROJECTS_CREATED: i16 = 4;

/// Per user in scope: leads and clients assigned, interactions had and projects created in the range, from the
/// activity rollup. Every record counted for a listed user is one the reader sees (its owner or creator is that
/// user, and the user is in the reader's scope), so the rollup needs no visibility columns.
pub async fn user_activity(
    conn: &mut PgConnection,
    scope: &ReportScope,
    range: DayRange,
) -> Result<UserActivityReport, DomainError> {
    let users = users_in_scope(conn, scope).await?;
    let ids: Vec<Uuid> = users.iter().map(|(id, _)| *id).collect();
    let slices = super::slices::slices(range);
    let mut qb = QueryBuilder::<Postgres>::new("SELECT r.metric, r.user_id, sum(");
    super::slices::push_sign(&mut qb, "r", &slices);
    qb.push(
        " * r.records)::bigint FROM (SELECT tenant_id, metric, grain, bucket, user_id, records FROM activity_rollup \
         UNION ALL SELECT tenant_id, metric, grain, bucket, user_id, records FROM activity_rollup_deltas) r \
         WHERE r.tenant_id = ",
    );
    qb.push_bind(scope.tenant).push(" AND r.user_id = ANY(").push_bind(ids).push(")");
    super::slices::push_filter(&mut qb, "r", &slices);
    qb.push(" GROUP BY 1, 2");
    let counts: HashMap<(i16, Uuid), i64> = qb
        .build_query_as::<(i16, Uuid, i64)>()
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|(m, u, n)| ((m, u), n))
        .collect();
    let count = |metric: i16, user: Uuid| counts.get(&(metric, user)).copied().unwrap_or(0);
    Ok(UserActivityReport {
        users: users
            .into_iter()
            .map(|(id, email)| UserActivity {
                user_id: id,
                user_email: email,
                assigned_leads: count(ASSIGNED_LEADS, id),
                assigned_clients: count(ASSIGNED_CLIENTS, id),
                interactions_logged: count(INTERACTIONS_LOGGED, id),
                projects_created: count(PROJECTS_CREATED, id),
            })
            .collect(),
    })
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FollowUpsReport {
    /// Visible interactions not completed whose `follow_up_at` has passed.
    pub overdue_interactions: i64,
    pub inactive_clients: Vec<InactiveClient>,
    pub inactive_leads: Vec<InactiveLead>,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct InactiveClient {
    pub client_id: Uuid,
    pub client_name: String,
    /// Whole days since the last interaction; `null` when never contacted.
    pub days_since_interaction: Option<i64>,
    /// The latest `contact_date` not in the future, as a day in the tenant's time zone (`YYYY-MM-DD`).
    pub last_interaction_date: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct InactiveLead {
    pub lead_id: Uuid,
    /// First and last name.
    pub lead_name: String,
    pub days_since_interaction: Option<i64>,
    pub last_interaction_date: Option<String>,
}

/// The most records each inactive list holds.
pub const INACTIVE_LIMIT: i64 = 100;

/// The two kinds of record the follow-ups report looks at.
struct Contactable {
    table: &'static str,
    /// The interactions' column that points at it.
    interaction_column: &'static str,
    select: &'static str,
    /// Statuses that are not followed up.
    excluded_statuses: &'static str,
}

const CLIENTS: Contactable = Contactable {
    table: "clients",
    interaction_column: "client_id",
    select: "r.id AS client_id, r.name AS client_name",
    excluded_statuses: "('inactive')",
};

const LEADS: Contactable = Contactable {
    table: "leads",
    interaction_column: "lead_id",
    select: "r.id AS lead_id, concat_ws(' ', r.first_name, r.last_name) AS lead_name",
    excluded_statuses: "('lost', 'converted')",
};

/// Visible live records of `kind` not contacted in the last `inactive_days`: never contacted first (oldest
/// records first), then the longest silent. Every live interaction on a record counts, whoever logged it.
async fn inactive<T>(
    conn: &mut PgConnection,
    scope: &ReportScope,
    kind: &Contactable,
    inactive_days: i32,
) -> Result<Vec<T>, DomainError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    // Never contacted: read in creation order until the page is full, each checked against its interactions.
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "SELECT {}, NULL::bigint AS days_since_interaction, NULL::text AS last_interaction_date FROM {} r \
         WHERE r.tenant_id = ",
        kind.select, kind.table
    ));
    qb.push_bind(scope.tenant).push(format!(" AND r.status NOT IN {}", kind.excluded_statuses));
    scope.push_visible(&mut qb, "r", "assigned_to_user_id");
    qb.push(format!(
        " AND NOT EXISTS (SELECT 1 FROM interactions i WHERE i.tenant_id = r.tenant_id AND i.{} = r.id \
         AND i.deleted_at IS NULL AND i.contact_date <= now())",
        kind.interaction_column
    ));
    qb.push(" ORDER BY r.created_at, r.id LIMIT ").push_bind(INACTIVE_LIMIT);
    let mut found: Vec<T> = qb.build_query_as().fetch_all(&mut *conn).await?;
    let remaining = INACTIVE_LIMIT - found.len() as i64;
    if remaining == 0 {
        return Ok(found);
    }
    // Then those whose last contact is longest ago.
    let column = kind.interaction_column;
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "WITH last_contact AS (SELECT i.{column} AS record_id, max(i.contact_date) AS last_at FROM interactions i \
         WHERE i.tenant_id = "
    ));
    qb.push_bind(scope.tenant);
    qb.push(format!(" AND i.{column} IS NOT NULL AND i.deleted_at IS NULL AND i.contact_date <= now() GROUP BY 1 "));
    qb.push("HAVING max(i.contact_date) <= now() - make_interval(days => ").push_bind(inactive_days).push(")) ");
    qb.push(format!(
        "SELECT {}, floor(extract(epoch FROM now() - x.last_at) / 86400)::bigint AS days_since_interaction, \
         to_char((x.last_at AT TIME ZONE ",
        kind.select
    ));
    qb.push_bind(scope.zone()).push(format!(
        ")::date, 'YYYY-MM-DD') AS last_interaction_date FROM last_contact x JOIN {} r ON r.tenant_id = ",
        kind.table
    ));
    qb.push_bind(scope.tenant).push(format!(" AND r.id = x.record_id AND r.status NOT IN {}", kind.excluded_statuses));
    scope.push_visible(&mut qb, "r", "assigned_to_user_id");
    qb.push(" ORDER BY x.last_at, r.id LIMIT ").push_bind(remaining);
    found.extend(qb.build_query_as::<T>().fetch_all(conn).await?);
    Ok(found)
}

pub async fn follow_ups(
    conn: &mut PgConnection,
    scope: &ReportScope,
    inactive_days: i32,
) -> Result<FollowUpsReport, DomainError> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT count(*) FROM interactions i WHERE i.tenant_id = ");
    qb.push_bind(scope.tenant).push(" AND i.completed_at IS NULL AND i.follow_up_at < now()");
    scope.push_visible(&mut qb, "i", "user_id");
    let overdue: i64 = qb.build_query_scalar().fetch_one(&mut *conn).await?;
    Ok(FollowUpsReport {
        overdue_interactions: overdue,
        inactive_clients: inactive(conn, scope, &CLIENTS, inactive_days).await?,
        inactive_leads: inactive(conn, scope, &LEADS, inactive_days).await?,
    })
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClientRetentionReport {
    /// active / (active + inactive) clients, in percent.
    pub retention_rate: f64,
    /// inactive / (active + inactive) clients, in percent.
    pub churn_rate: f64,
    pub status_breakdown: Vec<ClientStatusFigures>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClientStatusFigures {
    #[schema(value_type = ClientStatus)]
    pub status: String,
    pub count: i64,
    /// Visible live interactions on these clients with a contact date in the range.
    pub recent_interactions: i64,
}

/// Clients by status now, with their interactions in `range` (by contact date).
pub async fn client_retention(
    conn: &mut PgConnection,
    scope: &ReportScope,
    range: DayRange,
) -> Result<ClientRetentionReport, DomainError> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT c.status, count(*) FROM clients c WHERE c.tenant_id = ");
    qb.push_bind(scope.tenant);
    scope.push_visible(&mut qb, "c", "assigned_to_user_id");
    qb.push(" GROUP BY 1");
    let clients: HashMap<String, i64> =
        qb.build_query_as::<(String, i64)>().fetch_all(&mut *conn).await?.into_iter().collect();

    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT c.status, count(*) FROM interactions i JOIN clients c ON c.tenant_id = i.tenant_id AND c.id = i.client_id \
         WHERE i.tenant_id = ",
    );
    qb.push_bind(scope.tenant);
    scope.push_visible(&mut qb, "i", "user_id");
    scope.push_visible(&mut qb, "c", "assigned_to_user_id");
    range.push_instants(&mut qb, "i.contact_date", scope);
    qb.push(" GROUP BY 1");
    let recent: HashMap<String, i64> =
        qb.build_query_as::<(String, i64)>().fetch_all(conn).await?.into_iter().collect();

    let count = |map: &HashMap<String, i64>, status: ClientStatus| map.get(status.as_str()).copied().unwrap_or(0);
    let active = count(&clients, ClientStatus::Active);
    let inactive = count(&clients, ClientStatus::Inactive);
    Ok(ClientRetentionReport {
        retention_rate: percent(active, active + inactive),
        churn_rate: percent(inactive, active + inactive),
        status_breakdown: ClientStatus::ALL
            .iter()
            .map(|status| ClientStatusFigures {
                status: status.as_str().to_owned(),
                count: count(&clients, *status),
                recent_interactions: count(&recent, *status),
            })
            .collect(),
    })
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpcomingTasksReport {
    pub tasks: Vec<UpcomingTask>,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct UpcomingTask {
    pub interaction_id: Uuid,
    #[schema(value_type = crate::domain::enums::InteractionType)]
    pub interaction_type: String,
    pub contact_date: DateTime<Utc>,
    pub follow_up_at: Option<DateTime<Utc>>,
    pub client_name: Option<String>,
    pub lead_name: Option<String>,
    /// The email of the interaction's user.
    pub user_email: Option<String>,
    pub notes: Option<String>,
}

/// The most tasks listed.
pub const TASKS_LIMIT: i64 = 100;

/// Visible open interactions whose contact date or follow-up falls between now and `days_ahead` days from now,
/// earliest first (by whichever of the two falls in that window first).
pub async fn upcoming_tasks(
    conn: &mut PgConnection,
    scope: &ReportScope,
    days_ahead: i32,
) -> Result<UpcomingTasksReport, DomainError> {
    let mut qb = QueryBuilder::<Postgres>::new("WITH window_end AS (SELECT now() + make_interval(days => ");
    qb.push_bind(days_ahead).push(
        ") AS until) \
         SELECT i.id AS interaction_id, i.type AS interaction_type, i.contact_date, i.follow_up_at, \
         c.name AS client_name, \
         CASE WHEN l.id IS NULL THEN NULL ELSE concat_ws(' ', l.first_name, l.last_name) END AS lead_name, \
         u.email AS user_email, i.notes \
         FROM interactions i CROSS JOIN window_end w \
         LEFT JOIN clients c ON c.tenant_id = i.tenant_id AND c.id = i.client_id \
         LEFT JOIN leads l ON l.tenant_id = i.tenant_id AND l.id = i.lead_id \
         LEFT JOIN users u ON u.tenant_id = i.tenant_id AND u.id = i.user_id \
         WHERE i.tenant_id = ",
    );
    qb.push_bind(scope.tenant).push(" AND i.completed_at IS NULL");
    scope.push_visible(&mut qb, "i", "user_id");
    qb.push(
        " AND ((i.contact_date >= now() AND i.contact_date <= w.until) \
            OR (i.follow_up_at >= now() AND i.follow_up_at <= w.until)) \
         ORDER BY LEAST(CASE WHEN i.contact_date >= now() AND i.contact_date <= w.until THEN i.contact_date END, \
                        CASE WHEN i.follow_up_at >= now() AND i.follow_up_at <= w.until THEN i.follow_up_at END), i.id \
         LIMIT ",
    );
    qb.push_bind(TASKS_LIMIT);
    Ok(UpcomingTasksReport { tasks: qb.build_query_as().fetch_all(conn).await? })
}
