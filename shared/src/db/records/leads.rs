use super::{RecordTable, Viewer, finish_update, set, update_builder};
use crate::domain::access::Entity;
use crate::domain::enums::{LeadSource, LeadStatus};
use crate::domain::records::{LeadChanges, NewLead};
use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LeadRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub first_name: String,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    pub company: Option<String>,
    #[schema(value_type = Option<LeadSource>)]
    pub lead_source: Option<String>,
    #[schema(value_type = LeadStatus)]
    pub status: String,
    pub notes: Option<String>,
    pub assigned_to_user_id: Option<Uuid>,
    pub converted_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub const LEADS: RecordTable = RecordTable {
    entity: Entity::Lead,
    table: "leads",
    columns: "r.id, r.tenant_id, r.first_name, r.last_name, r.email, r.phone, r.company, r.lead_source, r.status, \
              r.notes, r.assigned_to_user_id, r.converted_at, r.created_by, r.created_at, r.updated_at, r.deleted_at",
    owner_column: "assigned_to_user_id",
    search_columns: &["first_name", "last_name", "email", "company"],
    sort_columns: &["created_at", "updated_at", "first_name", "last_name", "company", "status", "converted_at"],
    nullable_sort_columns: &["last_name", "company", "converted_at"],
};

#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    created_by: UserId,
    lead: NewLead,
) -> Result<LeadRow, DomainError> {
    let converted_at = match (lead.status, lead.converted_at) {
        (LeadStatus::Converted, None) => Some(Utc::now()),
        (_, at) => at,
    };
    let sql = format!(
        "INSERT INTO leads AS r (id, tenant_id, first_name, last_name, email, phone, company, lead_source, status, notes, \
         assigned_to_user_id, converted_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         RETURNING {}",
        LEADS.columns
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new_id())
        .bind(tenant)
        .bind(lead.first_name)
        .bind(lead.last_name)
        .bind(lead.email)
        .bind(lead.phone)
        .bind(lead.company)
        .bind(lead.lead_source.map(LeadSource::as_str))
        .bind(lead.status.as_str())
        .bind(lead.notes)
        .bind(lead.assigned_to_user_id)
        .bind(converted_at)
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
    changes: LeadChanges,
) -> Result<Option<LeadRow>, DomainError> {
    let mut qb = update_builder(&LEADS);
    set(&mut qb, "first_name", changes.first_name);
    set(&mut qb, "last_name", changes.last_name);
    set(&mut qb, "email", changes.email);
    set(&mut qb, "phone", changes.phone);
    set(&mut qb, "company", changes.company);
    set(&mut qb, "lead_source", changes.lead_source.map(|source| source.map(|s| s.as_str().to_owned())));
    set(&mut qb, "status", changes.status.map(|status| status.as_str().to_owned()));
    set(&mut qb, "notes", changes.notes);
    set(&mut qb, "assigned_to_user_id", changes.assigned_to_user_id);
    match changes.converted_at {
        Some(at) => set(&mut qb, "converted_at", Some(at)),
        // Converting a lead stamps when, unless the caller said.
        None if changes.status == Some(LeadStatus::Converted) => {
            qb.push(", converted_at = COALESCE(r.converted_at, now())");
        }
        None => {}
    }
    finish_update(qb, conn, tenant, &LEADS, viewer, id).await
}
