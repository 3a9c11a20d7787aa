//! The `emails` table: one row per event that emails someone (`(tenant_id, event_key)` unique), written in
//! the same transaction as the event, with the `email` job that sends it. The worker claims the job (which
//! fences it), sends with the email's id as Message-ID, and records how it went.

use super::jobs::{self, NewJob};
use crate::email::{self, EmailKind};
use crate::error::DomainError;
use crate::ids::{TenantId, UserId, new_id};
use crate::jobs::JobKind;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Sending attempts before an email is `failed` (back-off 2 s, 4 s … about four minutes in all).
pub const SEND_ATTEMPTS: i32 = 8;

/// An email to write: to a user of the tenant, about one event.
#[derive(Debug, Clone)]
pub struct NewEmail {
    pub to_user: UserId,
    pub kind: EmailKind,
    /// What the email is about, e.g. `import-ended:<id>`: a second email for the same key is not written.
    pub event_key: String,
    /// The template's variables; `recipient` and `name` are added from the user.
    pub context: Value,
    /// `[{file_name, content_type, storage_key, size}]`
    pub attachments: Value,
    pub schedule_run_id: Option<Uuid>,
}

/// Writes the email and its job, unless the recipient is inactive (or gone) or this event already has its
/// email. Returns the new email's id.
pub async fn enqueue(conn: &mut PgConnection, tenant: TenantId, email: NewEmail) -> Result<Option<Uuid>, DomainError> {
    let recipient: Option<(String, String)> =
        sqlx::query_as("SELECT email, name FROM users WHERE tenant_id = $1 AND id = $2 AND is_active")
            .bind(tenant)
            .bind(email.to_user)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((address, name)) = recipient else { return Ok(None) };
    let mut context = email.context;
    if let Some(fields) = context.as_object_mut() {
        fields.insert("recipient".into(), json!(address));
        fields.insert("name".into(), json!(if name.trim().is_empty() { address.clone() } else { name }));
    }
    let rendered = email::render(email.kind, &context).map_err(|error| anyhow::anyhow!(error))?;
    let id = new_id();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO emails (id, tenant_id, to_user_id, to_address, subject, kind, event_key, text_body, html_body, \
                             attachments, schedule_run_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (tenant_id, event_key) DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(tenant)
    .bind(email.to_user)
    .bind(&address)
    .bind(&rendered.subject)
    .bind(email.kind.as_str())
    .bind(&email.event_key)
    .bind(&rendered.text)
    .bind(&rendered.html)
    .bind(&email.attachments)
    .bind(email.schedule_run_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = inserted else { return Ok(None) };
    queue_job(conn, tenant, id).await?;
    Ok(Some(id))
}

async fn queue_job(conn: &mut PgConnection, tenant: TenantId, email_id: Uuid) -> Result<(), DomainError> {
    let job = jobs::insert(
        &mut *conn,
        tenant,
        &NewJob {
            kind: JobKind::Email,
            payload: json!({ "email_id": email_id }),
            max_attempts: SEND_ATTEMPTS,
            resource: Some(("email", email_id)),
            created_by: None,
            request_id: None,
        },
    )
    .await?;
    sqlx::query(
        "UPDATE emails SET job_id = $3, status = 'queued', updated_at = now() WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(email_id)
    .bind(job.id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct EmailRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub to_user_id: Option<Uuid>,
    pub to_address: String,
    pub subject: String,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub text_body: String,
    pub html_body: String,
    pub attachments: Value,
    pub schedule_run_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

const EMAIL_COLUMNS: &str = "id, tenant_id, to_user_id, to_address, subject, kind, status, attempts, error, text_body, \
    html_body, attachments, schedule_run_id, created_at, sent_at";

pub async fn get(conn: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<Option<EmailRow>, DomainError> {
    let sql = format!("SELECT {EMAIL_COLUMNS} FROM emails WHERE tenant_id = $1 AND id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(id).fetch_optional(conn).await?)
}

/// The outbox, newest first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    status: Option<&str>,
    kind: Option<&str>,
    limit: i64,
) -> Result<Vec<EmailRow>, DomainError> {
    let sql = format!(
        "SELECT {EMAIL_COLUMNS} FROM emails WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) \
         AND ($3::text IS NULL OR kind = $3) ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(status)
        .bind(kind)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// How a sending attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    /// Not sent, to be tried again (the job retries); `last` makes it `failed` for good.
    NotSent {
        error: String,
        last: bool,
    },
    /// No SMTP server is configured: kept until a worker with `SMTP_URL` finds it.
    Held(String),
}

/// Records an attempt, in the job's fenced transaction.
pub async fn record(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    outcome: &SendOutcome,
) -> Result<(), DomainError> {
    let (status, error) = match outcome {
        SendOutcome::Sent => ("sent", None),
        SendOutcome::NotSent { error, last } => (if *last { "failed" } else { "queued" }, Some(error.as_str())),
        SendOutcome::Held(reason) => ("held", Some(reason.as_str())),
    };
    let counts = !matches!(outcome, SendOutcome::Held(_));
    sqlx::query(
        "UPDATE emails SET status = $3, error = $4, attempts = attempts + CASE WHEN $5 THEN 1 ELSE 0 END, \
                sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(status)
    .bind(error)
    .bind(counts)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives held emails a new job each (a worker with SMTP now configured calls it); returns how many. Runs
/// across tenants on the owner connection; row locks make two workers take different emails.
pub async fn release_held(pool: &PgPool, limit: i64) -> Result<u64, DomainError> {
    let mut tx = pool.begin().await?;
    let held: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, tenant_id FROM emails WHERE status = 'held' ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    for (id, tenant) in &held {
        queue_job(&mut tx, TenantId(*tenant), *id).await?;
    }
    tx.commit().await?;
    Ok(held.len() as u64)
}
