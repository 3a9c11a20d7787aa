use super::{RecordTable, Viewer, finish_update, set, update_builder};
use crate::domain::access::Entity;
use crate::domain::enums::InteractionType;
use crate::domain::records::{InteractionChanges, NewInteraction};
use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct InteractionRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    #[schema(value_type = InteractionType)]
    pub kind: String,
    pub contact_date: DateTime<Utc>,
    pub lead_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub notes: Option<String>,
    pub follow_up_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub const INTERACTIONS: RecordTable = RecordTable {
    entity: Entity::Interaction,
    table: "interactions",
    columns: "r.id, r.tenant_id, r.type, r.contact_date, r.lead_id, r.client_id, r.user_id, r.notes, r.follow_up_at, \
              r.completed_at, r.created_by, r.created_at, r.updated_at, r.deleted_at",
    owner_column: "user_id",
    search_columns: &["notes"],
    sort_columns: &["created_at", "updated_at", "contact_date", "follow_up_at", "completed_at", "type"],
    nullable_sort_columns: &["follow_up_at", "completed_at"],
};

#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    created_by: UserId,
    interaction: NewInteraction,
) -> Result<InteractionRow, DomainError> {
    let sql = format!(
        "INSERT INTO interactions AS r (id, tenant_id, type, contact_date, lead_id, client_id, user_id, notes, follow_up_at, \
         completed_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {}",
        INTERACTIONS.columns
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new_id())
        .bind(tenant)
        .bind(interaction.kind.as_str())
        .bind(interaction.contact_date)
        .bind(interaction.lead_id)
        .bind(interaction.client_id)
        .bind(interaction.user_id.unwrap_or(created_by.as_uuid()))
        .bind(interaction.notes)
        .bind(interaction.follow_up_at)
        .bind(interaction.completed_at)
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
    changes: InteractionChanges,
) -> Result<Option<InteractionRow>, DomainError> {
    let mut qb = update_builder(&INTERACTIONS);
    set(&mut qb, "type", changes.kind.map(|kind| kind.as_str().to_owned()));
    set(&mut qb, "contact_date", changes.contact_date);
    set(&mut qb, "lead_id", changes.lead_id);
    set(&mut qb, "client_id", changes.client_id);
    set(&mut qb, "user_id", changes.user_id);
    set(&mut qb, "notes", changes.notes);
    set(&mut qb, "follow_up_at", changes.follow_up_at);
    set(&mut qb, "completed_at", changes.completed_at);
    finish_update(qb, conn, tenant, &INTERACTIONS, viewer, id).await
}
