//! Users of a tenant. Login is the one lookup without a tenant: an email is unique within a tenant, so it may
//! name users of several tenants, and the password (or the login's `tenant_id`) decides which.

use crate::domain::enums::Role;
use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UserRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub name: String,
    #[schema(value_type = Role)]
    pub role: String,
    pub is_active: bool,
    pub team_ids: Vec<Uuid>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "u.id, u.tenant_id, u.email, u.name, u.role, u.is_active, \
    ARRAY(SELECT ut.team_id FROM user_teams ut WHERE ut.tenant_id = u.tenant_id AND ut.user_id = u.id ORDER BY ut.team_id) AS team_ids, \
    u.last_login_at, u.created_at, u.updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginCandidate {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub is_active: bool,
    pub password_hash: String,
    pub token_version: i32,
}

/// The most accounts one login checks the password against (each check costs 19 MiB and tens of milliseconds).
pub const MAX_LOGIN_CANDIDATES: i64 = 5;

/// The users an email may sign in as, and the email as Postgres lower-cases it: the login limiter keys on that
/// same form, so `ADM\u{130}N@x` and `admin@x` (which Postgres folds alike and Rust does not) share one count.
#[derive(Debug)]
pub struct LoginLookup {
    pub email_key: String,
    pub candidates: Vec<LoginCandidate>,
}

/// Finds the users an email signs in as (in `tenant` only, when given). Runs on the owner connection: no
/// tenant is known yet.
#[tracing::instrument(skip_all)]
pub async fn find_for_login(pool: &PgPool, email: &str, tenant: Option<TenantId>) -> Result<LoginLookup, DomainError> {
    let mut conn = pool.acquire().await?;
    let email_key: String = sqlx::query_scalar("SELECT lower($1::text)").bind(email).fetch_one(&mut *conn).await?;
    let candidates = sqlx::query_as(
        "SELECT id, tenant_id, email, name, role, is_active, password_hash, token_version FROM users \
         WHERE lower(email) = $1 AND ($2::uuid IS NULL OR tenant_id = $2) ORDER BY created_at, id LIMIT $3",
    )
    .bind(&email_key)
    .bind(tenant)
    .bind(MAX_LOGIN_CANDIDATES)
    .fetch_all(&mut *conn)
    .await?;
    Ok(LoginLookup { email_key, candidates })
}

/// Revokes every token the user holds (logout).
#[tracing::instrument(skip_all, fields(user_id = %user))]
pub async fn revoke_tokens(conn: &mut PgConnection, tenant: TenantId, user: UserId) -> Result<(), DomainError> {
    sqlx::query("UPDATE users SET token_version = token_version + 1 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(user)
        .execute(conn)
        .await?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(user_id = %user))]
pub async fn record_login(pool: &PgPool, user: UserId) -> Result<(), DomainError> {
    sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1").bind(user).execute(pool).await?;
    Ok(())
}

pub struct NewUser {
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: Role,
    pub team_ids: Vec<Uuid>,
}

#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn create(conn: &mut PgConnection, tenant: TenantId, user: NewUser) -> Result<UserRow, DomainError> {
    let id = new_id();
    sqlx::query("INSERT INTO users (id, tenant_id, email, name, password_hash, role) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(tenant)
        .bind(&user.email)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .execute(&mut *conn)
        .await?;
    add_to_teams(conn, tenant, UserId(id), &user.team_ids).await?;
    get(conn, tenant, UserId(id)).await?.ok_or(DomainError::NotFound("user"))
}

async fn add_to_teams(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    team_ids: &[Uuid],
) -> Result<(), DomainError> {
    if team_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO user_teams (tenant_id, team_id, user_id) SELECT $1, team_id, $2 FROM unnest($3::uuid[]) AS team_id \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(user)
    .bind(team_ids)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, tenant: TenantId, id: UserId) -> Result<Option<UserRow>, DomainError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.tenant_id = $1 AND u.id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(id).fetch_optional(conn).await?)
}

pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    role: Option<Role>,
    limit: i64,
    offset: i64,
) -> Result<Vec<UserRow>, DomainError> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.tenant_id = $1 AND ($2::text IS NULL OR u.role = $2) \
         ORDER BY u.created_at, u.id LIMIT $3 OFFSET $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(role.map(Role::as_str))
        .bind(limit)
        .bind(offset)
        .fetch_all(conn)
        .await?)
}

pub async fn count(conn: &mut PgConnection, tenant: TenantId, role: Option<Role>) -> Result<i64, DomainError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM users WHERE tenant_id = $1 AND ($2::text IS NULL OR role = $2)")
        .bind(tenant)
        .bind(role.map(Role::as_str))
        .fetch_one(conn)
        .await?)
}

/// Active admins other than `except`: the last one may not be demoted or deactivated.
pub async fn count_other_active_admins(
    conn: &mut PgConnection,
    tenant: TenantId,
    except: UserId,
) -> Result<i64, DomainError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE tenant_id = $1 AND role = 'admin' AND is_active AND id <> $2",
    )
    .bind(tenant)
    .bind(except)
    .fetch_one(conn)
    .await?)
}

#[derive(Debug, Default)]
pub struct UserChanges {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
}

pub async fn update(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
    changes: &UserChanges,
) -> Result<Option<UserRow>, DomainError> {
    let updated = sqlx::query(
        // A change of is_active (either way) revokes every token issued before it.
        "UPDATE users SET name = COALESCE($3, name), role = COALESCE($4, role), is_active = COALESCE($5, is_active), \
         token_version = token_version + CASE WHEN $5 IS DISTINCT FROM NULL AND $5 <> is_active THEN 1 ELSE 0 END, \
         updated_at = now() WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(changes.name.as_deref())
    .bind(changes.role.map(Role::as_str))
    .bind(changes.is_active)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    get(conn, tenant, id).await
}
