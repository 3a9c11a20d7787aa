//! Ticket notifications (contract §10), written in the request's own transaction so the email exists exactly
//! when the change does: a new ticket's assignee, a ticket's new assignee, and the other side of a reply
//! (its creator and its assignee, but never the author). Nobody is emailed about their own action.

use crm_shared::db::emails::{self, NewEmail};
use crm_shared::db::records::tickets::{self, TicketPeople};
use crm_shared::email::EmailKind;
use crm_shared::{DomainError, TenantId, UserId};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

fn ticket_url(id: Uuid) -> String {
    format!("{}/api/v1/tickets/{id}", crm_shared::email::public_url())
}

/// After a ticket was created (`before` is None) or changed: emails its assignee when that is new. `ticket` is
/// the row the write returned (no second read).
pub async fn ticket_saved(
    conn: &mut PgConnection,
    tenant: TenantId,
    actor: UserId,
    ticket: &tickets::TicketRow,
    before: Option<Option<Uuid>>,
) -> Result<(), DomainError> {
    let Some(assignee) = ticket.assigned_to_user_id else { return Ok(()) };
    if assignee == actor.as_uuid() || before == Some(Some(assignee)) {
        return Ok(());
    }
    let id = ticket.id;
    let (kind, event_key) = match before {
        None => (EmailKind::TicketCreated, format!("ticket-created:{id}")),
        Some(_) => (
            EmailKind::TicketAssigned,
            format!("ticket-assigned:{id}:{assignee}:{}", ticket.updated_at.timestamp_micros()),
        ),
    };
    let people = TicketPeople {
        subject: ticket.subject.clone(),
        priority: ticket.priority.clone(),
        category: ticket.category.clone(),
        description: ticket.description.clone(),
        created_by: ticket.created_by,
        assigned_to_user_id: ticket.assigned_to_user_id,
    };
    let email = NewEmail {
        to_user: UserId(assignee),
        kind,
        event_key,
        context: context(&people, id),
        attachments: json!([]),
        schedule_run_id: None,
    };
    emails::enqueue(conn, tenant, email).await?;
    Ok(())
}

/// After a reply: emails the ticket's creator and assignee, but not the reply's author.
pub async fn ticket_replied(
    conn: &mut PgConnection,
    tenant: TenantId,
    reply: &tickets::TicketReplyRow,
    author_email: &str,
) -> Result<(), DomainError> {
    let Some(ticket) = tickets::people(conn, tenant, reply.ticket_id).await? else { return Ok(()) };
    let mut others: Vec<Uuid> = [ticket.created_by, ticket.assigned_to_user_id].into_iter().flatten().collect();
    others.dedup();
    others.retain(|user| Some(*user) != reply.author_user_id);
    for user in others {
        let mut context = context(&ticket, reply.ticket_id);
        if let Some(fields) = context.as_object_mut() {
            fields.insert("author".into(), json!(author_email));
            fields.insert("body".into(), json!(reply.body));
        }
        let email = NewEmail {
            to_user: UserId(user),
            kind: EmailKind::TicketReplied,
            event_key: format!("ticket-replied:{}:{user}", reply.id),
            context,
            attachments: json!([]),
            schedule_run_id: None,
        };
        emails::enqueue(conn, tenant, email).await?;
    }
    Ok(())
}

fn context(ticket: &TicketPeople, id: Uuid) -> serde_json::Value {
    json!({
        "subject": ticket.subject,
        "priority": ticket.priority,
        "category": ticket.category,
        "description": ticket.description.clone().unwrap_or_default(),
        "ticket_url": ticket_url(id),
    })
}
