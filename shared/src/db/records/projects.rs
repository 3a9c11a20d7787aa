use super::{RecordTable, Viewer, finish_update, set, update_builder};
use crate::domain::access::Entity;
use crate::domain::enums::ProjectStatus;
use crate::domain::records::{NewProject, ProjectChanges};
use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ProjectRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub client_id: Uuid,
    pub name: String,
    #[schema(value_type = ProjectStatus)]
    pub status: String,
    /// Decimal with two places, as a string (`"12500.00"`).
    #[schema(value_type = Option<String>)]
    pub value: Option<Decimal>,
    pub start_date: Option<NaiveDate>,
    pub close_date: Option<NaiveDate>,
    pub assigned_to_user_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub const PROJECTS: RecordTable = RecordTable {
    entity: Entity::Project,
    table: "projects",
    columns: "r.id, r.tenant_id, r.client_id, r.name, r.status, r.value, r.start_date, r.close_date, \
              r.assigned_to_user_id, r.created_by, r.created_at, r.updated_at, r.deleted_at",
    owner_column: "assigned_to_user_id",
    search_columns: &["name"],
    sort_columns: &["created_at", "updated_at", "name", "status", "value", "start_date", "close_date"],
    nullable_sort_columns: &["value", "start_date", "close_date"],
};

#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    created_by: UserId,
    project: NewProject,
) -> Result<ProjectRow, DomainError> {
    let sql = format!(
        "INSERT INTO projects AS r (id, tenant_id, client_id, name, status, value, start_date, close_date, \
         assigned_to_user_id, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {}",
        PROJECTS.columns
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new_id())
        .bind(tenant)
        .bind(project.client_id)
        .bind(project.name)
        .bind(project.status.as_str())
        .bind(project.value)
        .bind(project.start_date)
        .bind(project.close_date)
        .bind(project.assigned_to_user_id)
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
    changes: ProjectChanges,
) -> Result<Option<ProjectRow>, DomainError> {
    let mut qb = update_builder(&PROJECTS);
    set(&mut qb, "client_id", changes.client_id);
    set(&mut qb, "name", changes.name);
    set(&mut qb, "status", changes.status.map(|status| status.as_str().to_owned()));
    set(&mut qb, "value", changes.value);
    set(&mut qb, "start_date", changes.start_date);
    set(&mut qb, "close_date", changes.close_date);
    set(&mut qb, "assigned_to_user_id", changes.assigned_to_user_id);
    finish_update(qb, conn, tenant, &PROJECTS, viewer, id).await
}
