//! Export templates (contract §7): a named entity, format, columns, filters and sort, private to its creator
//! or shared with the tenant. What a template refers to is validated when it is saved; running it exports with
//! the runner's own visibility.

use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TemplateRow {
    pub id: Uuid,
    pub name: String,
    /// `leads clients projects interactions tickets`.
    pub entity: String,
    /// `csv xlsx pdf`.
    pub format: String,
    pub columns: Vec<String>,
    #[schema(value_type = Object)]
    pub filters: Value,
    pub sort: Option<String>,
    /// Every user of the tenant sees and runs a shared template; otherwise only its creator.
    pub shared: bool,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, entity, format, columns, filters, sort, shared, created_by, created_at, updated_at";

pub struct TemplateFields<'a> {
    pub name: &'a str,
    pub entity: &'a str,
    pub format: &'a str,
    pub columns: &'a [String],
    pub filters: &'a Value,
    pub sort: Option<&'a str>,
    pub shared: bool,
}

pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    fields: &TemplateFields<'_>,
) -> Result<TemplateRow, DomainError> {
    let sql = format!(
        "INSERT INTO export_templates (id, tenant_id, name, entity, format, columns, filters, sort, shared, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new_id())
        .bind(tenant)
        .bind(fields.name)
        .bind(fields.entity)
        .bind(fields.format)
        .bind(fields.columns)
        .bind(fields.filters)
        .bind(fields.sort)
        .bind(fields.shared)
        .bind(user)
        .fetch_one(conn)
        .await?)
}

/// A template `user` may see: shared, or their own.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    user: UserId,
) -> Result<Option<TemplateRow>, DomainError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM export_templates WHERE tenant_id = $1 AND id = $2 AND (shared OR created_by = $3)"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(id).bind(user).fetch_optional(conn).await?)
}

/// The templates `user` may see, by name.
pub async fn list(conn: &mut PgConnection, tenant: TenantId, user: UserId) -> Result<Vec<TemplateRow>, DomainError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM export_templates WHERE tenant_id = $1 AND (shared OR created_by = $2) \
         ORDER BY lower(name), id"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(user).fetch_all(conn).await?)
}

/// Replaces a template's fields; `None` when it is not there.
pub async fn update(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    fields: &TemplateFields<'_>,
) -> Result<Option<TemplateRow>, DomainError> {
    let sql = format!(
        "UPDATE export_templates SET name = $3, entity = $4, format = $5, columns = $6, filters = $7, sort = $8, \
             shared = $9, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(fields.name)
        .bind(fields.entity)
        .bind(fields.format)
        .bind(fields.columns)
        .bind(fields.filters)
        .bind(fields.sort)
        .bind(fields.shared)
        .fetch_optional(conn)
        .await?)
}

pub async fn delete(conn: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<bool, DomainError> {
    let deleted = sqlx::query("DELETE FROM export_templates WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(deleted.rows_affected() == 1)
}
