use super::{RecordTable, Viewer, finish_update, set, update_builder};
use crate::domain::access::Entity;
use crate::domain::enums::ClientStatus;
use crate::domain::records::{ClientChanges, NewClient};
use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ClientRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[schema(value_type = ClientStatus)]
    pub status: String,
    pub industry: Option<String>,
    pub assigned_to_user_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub const CLIENTS: RecordTable = RecordTable {
    entity: Entity::Client,
    table: "clients",
    columns: "r.id, r.tenant_id, r.name, r.email, r.phone, r.status, r.industry, r.assigned_to_user_id, r.created_by, \
              r.created_at, r.updated_at, r.deleted_at",
    owner_column: "assigned_to_user_id",
    search_columns: &["name", "email", "industry"],
    sort_columns: &["created_at", "updated_at", "name", "status", "industry"],
    nullable_sort_columns: &["industry"],
};

#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    created_by: UserId,
    client: NewClient,
) -> Result<ClientRow, DomainError> {
    let sql = format!(
        "INSERT INTO clients AS r (id, tenant_id, name, email, phone, status, industry, assigned_to_user_id, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {}",
        CLIENTS.columns
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new_id())
        .bind(tenant)
        .bind(client.name)
        .bind(client.email)
        .bind(client.phone)
        .bind(client.status.as_str())
        .bind(client.industry)
        .bind(client.assigned_to_user_id)
        .bind(created_by)
        .fetch_one(conn)
        .await?)
}

#[tracing::instrument(skip_all, fields(tenant_id = %tenant, id = %id))]
pub async fn update(
    conn: &mut PgConnection,
    tenant: TenantId,
    viewer: &Viewer,
    id: Uuid,
    changes: ClientChanges,
) -> Result<Option<ClientRow>, DomainError> {
    let mut qb = update_builder(&CLIENTS);
    set(&mut qb, "name", changes.name);
    set(&mut qb, "email", changes.email);
    set(&mut qb, "phone", changes.phone);
    set(&mut qb, "status", changes.status.map(|status| status.as_str().to_owned()));
    set(&mut qb, "industry", changes.industry);
    set(&mut qb, "assigned_to_user_id", changes.assigned_to_user_id);
    finish_update(qb, conn, tenant, &CLIENTS, viewer, id).await
}
