//! Notification emails (contract §10) written by jobs, each in the transaction that commits the event it
//! tells of, so the email exists exactly when the event does, and at most once per event (its `event_key`).

use crm_shared::db::emails::{self, NewEmail};
use crm_shared::db::exports::ExportRow;
use crm_shared::db::imports::ImportView;
use crm_shared::email::EmailKind;
use crm_shared::{DomainError, TenantId, UserId};
use serde_json::{Value, json};
use sqlx::PgConnection;

/// To who started the import: its counts and, when rows failed, the link to its errors.
pub async fn import_ended(
    conn: &mut PgConnection,
    tenant: TenantId,
    import: &ImportView,
    public_url: &str,
) -> Result<(), DomainError> {
    let Some(started_by) = import.created_by else { return Ok(()) };
    let status_words = match import.status.as_str() {
        "completed" => "finished",
        "completed_with_errors" => "finished with errors",
        "cancelled" => "was cancelled",
        _ => "failed",
    };
    let email = NewEmail {
        to_user: UserId(started_by),
        kind: EmailKind::ImportEnded,
        event_key: format!("import-ended:{}:{}", import.id, import.attempt),
        context: json!({
            "file_name": import.file_name,
            "status_words": status_words,
            "processed": import.processed_rows,
            "created": import.created,
            "updated": import.updated,
            "failed": import.failed,
            "errors_url": format!("{public_url}/api/v1/imports/{}/errors.csv", import.id),
        }),
        attachments: json!([]),
        schedule_run_id: None,
    };
    emails::enqueue(conn, tenant, email).await?;
    Ok(())
}

/// What an export's email needs besides the export.
pub struct ExportMail<'a> {
    pub download_url: String,
    pub storage_key: &'a str,
    pub file_size: i64,
    pub row_count: i64,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// To who asked for the export: its download link. A scheduled export (one per recipient) instead goes to its
/// recipient with the file attached when it is at most 10 MiB, counted on its run; with `send_if_data`, an
/// empty one is not sent.
pub async fn export_ready(
    conn: &mut PgConnection,
    tenant: TenantId,
    export: &ExportRow,
    file: &ExportMail<'_>,
    schedule: Option<&ScheduledExport>,
) -> Result<(), DomainError> {
    let expires_at = file.expires_at.format("%Y-%m-%d %H:%M UTC").to_string();
    let Some(schedule) = schedule else {
        let email = NewEmail {
            to_user: UserId(export.created_by),
            kind: EmailKind::ExportReady,
            event_key: format!("export-ready:{}", export.id),
            context: json!({ "entity": export.entity, "rows": file.row_count, "format": export.format,
                             "expires_at": expires_at, "download_url": file.download_url }),
            attachments: json!([]),
            schedule_run_id: None,
        };
        emails::enqueue(conn, tenant, email).await?;
        return Ok(());
    };
    if schedule.send_if_data && file.row_count == 0 {
        return Ok(());
    }
    let attached = u64::try_from(file.file_size).unwrap_or(u64::MAX) <= crm_shared::email::MAX_ATTACHMENT_BYTES;
    let attachments: Value = if attached {
        json!([{ "file_name": export.file_name, "content_type": content_type(&export.format),
                 "storage_key": file.storage_key, "size": file.file_size }])
    } else {
        json!([])
    };
    let email = NewEmail {
        to_user: UserId(export.created_by),
        kind: EmailKind::ScheduledExport,
        event_key: format!("schedule-run:{}:{}", schedule.run_id, export.created_by),
        context: json!({ "schedule_name": schedule.name, "entity": export.entity, "rows": file.row_count,
                         "format": export.format, "attached": attached, "file_name": export.file_name,
                         "expires_at": expires_at, "download_url": file.download_url }),
        attachments,
        schedule_run_id: Some(schedule.run_id),
    };
    if emails::enqueue(conn, tenant, email).await?.is_some() {
        crm_shared::db::schedules::count_email(conn, tenant, schedule.run_id).await?;
    }
    Ok(())
}

/// The schedule run an export was made for.
pub struct ScheduledExport {
    pub run_id: uuid::Uuid,
    pub name: String,
    pub send_if_data: bool,
}

pub fn content_type(format: &str) -> &'static str {
    crm_shared::exports::ExportFormat::parse(format).map_or("application/octet-stream", |format| format.content_type())
}
