use super::{RecordTable, Viewer, finish_update, set, update_builder};
use crate::domain::access::Entity;
use crate::domain::enums::{TicketCategory, TicketPriority, TicketStatus};
use crate::domain::records::{NewTicket, TicketChanges};
use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TicketRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub subject: String,
    pub description: Option<String>,
    #[schema(value_type = TicketCategory)]
    pub category: String,
    #[schema(value_type = TicketPriority)]
    pub priority: String,
    #[schema(value_type = TicketStatus)]
    pub status: String,
    pub queue: Option<String>,
    pub assigned_to_user_id: Option<Uuid>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub const TICKETS: RecordTable = RecordTable {
    entity: Entity::Ticket,
    table: "tickets",
    columns: "r.id, r.tenant_id, r.subject, r.description, r.category, r.priority, r.status, r.queue, \
              r.assigned_to_user_id, r.closed_at, r.created_by, r.created_at, r.updated_at, r.deleted_at",
    owner_column: "assigned_to_user_id",
    search_columns: &["subject", "description"],
    sort_columns: &["created_at", "updated_at", "subject", "priority", "status", "closed_at"],
    nullable_sort_columns: &["closed_at"],
};

fn is_closed(status: TicketStatus) -> bool {
    matches!(status, TicketStatus::Resolved | TicketStatus::Closed)
}

#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    created_by: UserId,
    ticket: NewTicket,
) -> Result<TicketRow, DomainError> {
    let closed_at = match (is_closed(ticket.status), ticket.closed_at) {
        (true, None) => Some(Utc::now()),
        (_, at) => at,
    };
    let sql = format!(
        "INSERT INTO tickets AS r (id, tenant_id, subject, description, category, priority, status, queue, \
         assigned_to_user_id, closed_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {}",
        TICKETS.columns
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new_id())
        .bind(tenant)
        .bind(ticket.subject)
        .bind(ticket.description)
        .bind(ticket.category.as_str())
        .bind(ticket.priority.as_str())
        .bind(ticket.status.as_str())
        .bind(ticket.queue)
        .bind(ticket.assigned_to_user_id)
        .bind(closed_at)
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
    changes: TicketChanges,
) -> Result<Option<TicketRow>, DomainError> {
    let mut qb = update_builder(&TICKETS);
    set(&mut qb, "subject", changes.subject);
    set(&mut qb, "description", changes.description);
    set(&mut qb, "category", changes.category.map(|value| value.as_str().to_owned()));
    set(&mut qb, "priority", changes.priority.map(|value| value.as_str().to_owned()));
    set(&mut qb, "status", changes.status.map(|value| value.as_str().to_owned()));
    set(&mut qb, "queue", changes.queue);
    set(&mut qb, "assigned_to_user_id", changes.assigned_to_user_id);
    match (changes.closed_at, changes.status) {
        (Some(at), _) => set(&mut qb, "closed_at", Some(at)),
        // Closing stamps when; reopening clears it.
        (None, Some(status)) if is_closed(status) => {
            qb.push(", closed_at = COALESCE(r.closed_at, now())");
        }
        (None, Some(_)) => {
            qb.push(", closed_at = NULL");
        }
        (None, None) => {}
    }
    finish_update(qb, conn, tenant, &TICKETS, viewer, id).await
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TicketReplyRow {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub author_user_id: Option<Uuid>,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[tracing::instrument(skip_all, fields(tenant_id = %tenant, ticket_id = %ticket))]
pub async fn add_reply(
    conn: &mut PgConnection,
    tenant: TenantId,
    ticket: Uuid,
    author: UserId,
    body: String,
) -> Result<TicketReplyRow, DomainError> {
    let reply: TicketReplyRow = sqlx::query_as(
        "INSERT INTO ticket_replies (id, tenant_id, ticket_id, author_user_id, body) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, ticket_id, author_user_id, body, created_at",
    )
    .bind(new_id())
    .bind(tenant)
    .bind(ticket)
    .bind(author)
    .bind(body)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("UPDATE tickets SET updated_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(ticket)
        .execute(conn)
        .await?;
    Ok(reply)
}

pub async fn list_replies(
    conn: &mut PgConnection,
    tenant: TenantId,
    ticket: Uuid,
    limit: i64,
    offset: i64,
) -> Result<Vec<TicketReplyRow>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT id, ticket_id, author_user_id, body, created_at FROM ticket_replies \
         WHERE tenant_id = $1 AND ticket_id = $2 ORDER BY created_at, id LIMIT $3 OFFSET $4",
    )
    .bind(tenant)
    .bind(ticket)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?)
}

pub async fn count_replies(conn: &mut PgConnection, tenant: TenantId, ticket: Uuid) -> Result<i64, DomainError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM ticket_replies WHERE tenant_id = $1 AND ticket_id = $2")
        .bind(tenant)
        .bind(ticket)
        .fetch_one(conn)
        .await?)
}

/// A ticket's subject, priority, category, creator and assignee as they are now (for its notifications).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketPeople {
    pub subject: String,
    pub priority: String,
    pub category: String,
    pub description: Option<String>,
    pub created_by: Option<Uuid>,
    pub assigned_to_user_id: Option<Uuid>,
}

pub async fn people(conn: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<Option<TicketPeople>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT subject, priority, category, description, created_by, assigned_to_user_id FROM tickets \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}
