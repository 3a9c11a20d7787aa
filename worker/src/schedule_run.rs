//! The `report` job of a schedule run (contract §10): for each recipient, the report computed with that
//! recipient's own visibility, rendered (PDF, XLSX or CSV, by the export writers) and emailed as an attachment;
//! or, for an export schedule, one export per recipient whose end emails it. Deactivated recipients are
//! skipped, and with `send_if_data` nobody gets an empty one; the run records why, per recipient.
//!
//! A retried run makes no second email: each (run, recipient) is one email event.

use crate::runtime::{JobContext, JobError};
use crm_shared::db::emails::{self, NewEmail};
use crm_shared::db::exports::{self as export_repo, NewExport};
use crm_shared::db::jobs::{self, NewJob};
use crm_shared::db::reports::ReportScope;
use crm_shared::db::schedules::{self, RunRow, ScheduleRow};
use crm_shared::db::visibility::Viewer;
use crm_shared::domain::access::{self, Action, Entity};
use crm_shared::email::{EmailKind, MAX_ATTACHMENT_BYTES};
use crm_shared::exports::{self, ExportFormat, Title};
use crm_shared::jobs::JobKind;
use crm_shared::report_run::{self, ReportRequest};
use crm_shared::{DomainError, TenantId, UserId, db};
use serde_json::{Value, json};
use uuid::Uuid;

/// What became of one recipient.
struct Delivery {
    user_id: Uuid,
    outcome: &'static str,
    detail: String,
}

pub async fn run(context: &JobContext) -> Result<Option<Value>, JobError> {
    let run_id = context.payload_id("schedule_run_id")?;
    let tenant = TenantId(context.job.tenant_id);
    let (run, schedule) = {
        let mut tx = context.begin().await?;
        let found = schedules::run_with_schedule(&mut tx, tenant, run_id).await?;
        tx.commit().await.map_err(DomainError::from)?;
        found.ok_or_else(|| JobError::Permanent("the schedule was deleted".into()))?
    };
    if !matches!(run.status.as_str(), "queued" | "running") {
        return Ok(Some(json!({ "run_status": run.status })));
    }
    let mut deliveries = Vec::new();
    for recipient in &schedule.recipients {
        context.checkpoint()?;
        let delivery = match schedule.action.get("type").and_then(Value::as_str) {
            Some("export") => export_for(context, &schedule, &run, *recipient).await?,
            _ => report_for(context, &schedule, &run, *recipient).await?,
        };
        deliveries.push(delivery);
    }
    let emailed = deliveries.iter().filter(|delivery| delivery.outcome == "emailed").count() as i32;
    let exporting = deliveries.iter().any(|delivery| delivery.outcome == "export_queued");
    let reason = (emailed == 0 && !exporting).then(|| why_nothing_went(&deliveries));
    let status = if reason.is_some() { "skipped" } else { "succeeded" };
    let recipients: Value = deliveries
        .iter()
        .map(|delivery| json!({ "user_id": delivery.user_id, "outcome": delivery.outcome, "detail": delivery.detail }))
        .collect();
    let mut tx = context.begin().await?;
    schedules::finish_run(&mut tx, tenant, run.id, status, emailed, reason.as_deref(), &recipients).await?;
    context.commit(tx, None).await?;
    Ok(Some(json!({ "schedule_run_id": run.id, "status": status, "emails": emailed })))
}

fn why_nothing_went(deliveries: &[Delivery]) -> String {
    if deliveries.iter().all(|delivery| delivery.outcome == "no_data") {
        return "no_data: send_if_data is on and no recipient had anything to report".into();
    }
    let parts: Vec<String> =
        deliveries.iter().map(|delivery| format!("{}: {}", delivery.user_id, delivery.detail)).collect();
    format!("nothing sent: {}", parts.join("; "))
}

fn skipped(user_id: Uuid, outcome: &'static str, detail: impl Into<String>) -> Delivery {
    Delivery { user_id, outcome, detail: detail.into() }
}

async fn report_for(
    context: &JobContext,
    schedule: &ScheduleRow,
    run: &RunRow,
    recipient: Uuid,
) -> Result<Delivery, JobError> {
    let tenant = TenantId(schedule.tenant_id);
    let action = &schedule.action;
    let name = action.get("report").and_then(Value::as_str).unwrap_or_default();
    let request = ReportRequest::parse(name, action.get("params").unwrap_or(&Value::Null))
        .map_err(|problems| JobError::Permanent(format!("the schedule's report is not valid: {problems:?}")))?;
    let format = action
        .get("format")
        .and_then(Value::as_str)
        .and_then(ExportFormat::parse)
        .ok_or_else(|| JobError::Permanent("the schedule's format is not valid".into()))?;
    // The recipient as they are now: a deactivated user is skipped, a demoted one sees what their role sees.
    let opened = db::begin_snapshot_for_user(&context.runtime.pool, tenant, UserId(recipient)).await;
    let (mut tx, session) = match opened {
        Ok(opened) => opened,
        Err(DomainError::Unauthorized(_)) => return Ok(skipped(recipient, "skipped", "deactivated or removed")),
        Err(other) => return Err(other.into()),
    };
    if !request.allowed_for(session.role) {
        let _ = tx.rollback().await;
        return Ok(skipped(recipient, "skipped", format!("the {} role does not get the {name} report", session.role)));
    }
    let Some(scope) = access::scope(session.role, Entity::Lead, Action::Read) else {
        let _ = tx.rollback().await;
        return Ok(skipped(recipient, "skipped", format!("the {} role has no reports", session.role)));
    };
    let zone = session.locale.time_zone;
    let scope = ReportScope { tenant, viewer: Viewer { user_id: UserId(recipient), scope }, time_zone: zone };
    let today = run.scheduled_for.with_timezone(&zone).date_naive();
    let report = request.compute(&mut tx, &scope, today).await?;
    let address: String = crm_shared::db::users::get(&mut tx, tenant, UserId(recipient))
        .await?
        .map(|user| user.email)
        .unwrap_or_default();
    let _ = tx.rollback().await;
    if schedule.send_if_data && !report_run::has_data(&report) {
        return Ok(skipped(recipient, "no_data", "nothing to report (send_if_data)"));
    }

    let period = request.describe(today);
    let table = report_run::to_table(&report);
    let file_name = format!("{name}-{today}.{}", format.as_str());
    let directory = std::env::temp_dir().join("crm-reports");
    std::fs::create_dir_all(&directory)
        .map_err(|error| JobError::Transient(format!("temporary directory: {error}")))?;
    let local = directory.join(format!("{}-{recipient}-{}.{}", run.id, context.job.attempts, format.as_str()));
    let title = Title {
        heading: format!("{} report: {}", exports::capitalised(name), schedule.name),
        filters: period.clone(),
        made_for: address,
        made_at: chrono::Utc::now(),
        row_count: table.rows.len() as i64,
    };
    let path = local.clone();
    let written = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let header: Vec<&str> = table.header.iter().map(String::as_str).collect();
        let mut file = exports::writer(format, &path, &header, zone, title)?;
        for row in &table.rows {
            file.write_row(row)?;
        }
        file.finish()
    })
    .await
    .map_err(|error| JobError::Transient(format!("the report writer stopped: {error}")))?;
    if let Err(error) = written {
        let _ = std::fs::remove_file(&local);
        return Err(JobError::Transient(format!("the report file could not be written: {error}")));
    }
    let prefix = crm_shared::email::REPORT_FILES_PREFIX;
    let key = format!("{prefix}{tenant}/{}/{recipient}-{}-{file_name}", run.id, context.job.attempts);
    let stored = context.runtime.storage.store_file(&key, &local).await;
    let _ = std::fs::remove_file(&local);
    let size = stored?;
    if size > MAX_ATTACHMENT_BYTES {
        // A report lists at most a few hundred rows; this is a guard, not a path users meet.
        let _ = context.runtime.storage.delete(&key).await;
        return Ok(skipped(recipient, "failed", format!("the report file is {size} bytes, over the 10 MiB limit")));
    }
    let email = NewEmail {
        to_user: UserId(recipient),
        kind: EmailKind::ScheduledReport,
        event_key: format!("schedule-run:{}:{recipient}", run.id),
        context: json!({ "schedule_name": schedule.name, "report": name, "period": period,
                         "file_name": file_name, "download_url": null }),
        attachments: json!([{ "file_name": file_name, "content_type": format.content_type(),
                              "storage_key": key, "size": size }]),
        schedule_run_id: Some(run.id),
    };
    let mut tx = context.begin().await?;
    let queued = emails::enqueue(&mut tx, tenant, email).await?;
    context.commit(tx, None).await?;
    Ok(match queued {
        Some(email_id) => skipped(recipient, "emailed", format!("email {email_id}")),
        None => skipped(recipient, "emailed", "emailed by an earlier attempt of this run"),
    })
}

/// An export schedule: one export per recipient, made with the recipient's visibility; its end emails it.
async fn export_for(
    context: &JobContext,
    schedule: &ScheduleRow,
    run: &RunRow,
    recipient: Uuid,
) -> Result<Delivery, JobError> {
    let tenant = TenantId(schedule.tenant_id);
    let action = &schedule.action;
    let text = |name: &str| action.get(name).and_then(Value::as_str).map(str::to_owned);
    let entity_name = text("entity").unwrap_or_default();
    let entity = exports::entity_by_name(&entity_name)
        .ok_or_else(|| JobError::Permanent("the schedule's export is not valid".into()))?;
    let mut tx = context.begin().await?;
    let user = crm_shared::db::users::get(&mut tx, tenant, UserId(recipient)).await?;
    let Some(user) = user.filter(|user| user.is_active) else {
        let _ = tx.rollback().await;
        return Ok(skipped(recipient, "skipped", "deactivated or removed"));
    };
    let role = crm_shared::domain::enums::Role::parse(&user.role).unwrap_or(crm_shared::domain::enums::Role::Readonly);
    if access::scope(role, entity, Action::Read).is_none() {
        let _ = tx.rollback().await;
        return Ok(skipped(recipient, "skipped", format!("the {role} role may not read {entity_name}")));
    }
    if export_repo::exists_for_run(&mut tx, tenant, run.id, UserId(recipient)).await? {
        let _ = tx.rollback().await;
        return Ok(skipped(recipient, "export_queued", "queued by an earlier attempt of this run"));
    }
    let export_id = crm_shared::ids::new_id();
    let job = jobs::insert(
        &mut tx,
        tenant,
        &NewJob {
            kind: JobKind::Export,
            payload: json!({ "export_id": export_id }),
            max_attempts: 3,
            resource: Some(("export", export_id)),
            created_by: Some(UserId(recipient)),
            request_id: None,
        },
    )
    .await?;
    let columns: Vec<String> = action
        .get("columns")
        .and_then(Value::as_array)
        .map(|columns| columns.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let file_name = text("file_name").unwrap_or_else(|| format!("{entity_name}.csv"));
    export_repo::insert(
        &mut tx,
        tenant,
        NewExport {
            id: export_id,
            job_id: job.id,
            entity: &entity_name,
            format: &text("format").unwrap_or_else(|| "csv".into()),
            columns,
            filters: action.get("filters").cloned().unwrap_or_else(|| json!({})),
            sort: text("sort"),
            query: action.get("query").cloned().unwrap_or_else(|| json!({})),
            file_name: &file_name,
            template_id: text("template_id").and_then(|id| id.parse().ok()),
            created_by: UserId(recipient),
        },
    )
    .await?;
    export_repo::link_schedule_run(&mut tx, tenant, export_id, run.id).await?;
    context.commit(tx, None).await?;
    Ok(skipped(recipient, "export_queued", format!("export {export_id}")))
}
