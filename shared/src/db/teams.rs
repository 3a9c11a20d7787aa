//! Teams and their members: a manager sees the records of the users in their teams.

use crate::error::DomainError;
use crate::ids::{TenantId, new_id};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TeamRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub member_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const TEAM_SELECT: &str = "SELECT t.id, t.tenant_id, t.name, \
    ARRAY(SELECT ut.user_id FROM user_teams ut WHERE ut.tenant_id = t.tenant_id AND ut.team_id = t.id ORDER BY ut.user_id) AS member_ids, \
    t.created_at, t.updated_at FROM teams t";

#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn create(conn: &mut PgConnection, tenant: TenantId, name: &str) -> Result<TeamRow, DomainError> {
    let id = new_id();
    sqlx::query("INSERT INTO teams (id, tenant_id, name) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(tenant)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    get(conn, tenant, id).await?.ok_or(DomainError::NotFound("team"))
}

pub async fn get(conn: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<Option<TeamRow>, DomainError> {
    let sql = format!("{TEAM_SELECT} WHERE t.tenant_id = $1 AND t.id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(id).fetch_optional(conn).await?)
}

pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    limit: i64,
    offset: i64,
) -> Result<Vec<TeamRow>, DomainError> {
    let sql = format!("{TEAM_SELECT} WHERE t.tenant_id = $1 ORDER BY lower(t.name), t.id LIMIT $2 OFFSET $3");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(limit).bind(offset).fetch_all(conn).await?)
}

pub async fn count(conn: &mut PgConnection, tenant: TenantId) -> Result<i64, DomainError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM teams WHERE tenant_id = $1").bind(tenant).fetch_one(conn).await?)
}

/// Replaces a team's members. An unknown user id fails the whole change (foreign key), nothing half-done.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, team_id = %team, members = user_ids.len()))]
pub async fn set_members(
    conn: &mut PgConnection,
    tenant: TenantId,
    team: Uuid,
    user_ids: &[Uuid],
) -> Result<Option<TeamRow>, DomainError> {
    let exists: Option<Uuid> = sqlx::query_scalar("SELECT id FROM teams WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
        .bind(tenant)
        .bind(team)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    sqlx::query("DELETE FROM user_teams WHERE tenant_id = $1 AND team_id = $2")
        .bind(tenant)
        .bind(team)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO user_teams (tenant_id, team_id, user_id) SELECT DISTINCT $1, $2, user_id FROM unnest($3::uuid[]) AS user_id",
    )
    .bind(tenant)
    .bind(team)
    .bind(user_ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE teams SET updated_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(team)
        .execute(&mut *conn)
        .await?;
    get(conn, tenant, team).await
}
