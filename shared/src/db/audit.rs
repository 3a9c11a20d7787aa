//! The audit log: who did what, for admins and operators. No personal data beyond ids in `details`.

use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

pub struct AuditEntry<'a> {
    pub actor: Option<UserId>,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<Uuid>,
    pub details: Value,
    pub request_id: Option<&'a str>,
    pub ip: Option<&'a str>,
}

/// Writes an entry. `tenant` is `None` only for events with no tenant (a failed login for an unknown email),
/// which must be written on the owner connection because row-level security refuses them to `crm_app`.
#[tracing::instrument(skip_all, fields(action = entry.action))]
pub async fn record(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    entry: AuditEntry<'_>,
) -> Result<(), DomainError> {
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, actor_user_id, action, target_type, target_id, details, request_id, ip) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(tenant)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(entry.details)
    .bind(entry.request_id)
    .bind(entry.ip)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditRow {
    pub id: Uuid,
    pub actor_user_id: Option<Uuid>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<Uuid>,
    pub details: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The newest entries of a tenant, optionally for one action.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    action: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AuditRow>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT id, actor_user_id, action, target_type, target_id, details, created_at FROM audit_log \
         WHERE tenant_id = $1 AND ($2::text IS NULL OR action = $2) ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
    )
    .bind(tenant)
    .bind(action)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?)
}
