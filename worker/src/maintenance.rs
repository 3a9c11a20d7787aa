//! The `maintenance` job: a built-in schedule run now for one tenant (`POST
//! /api/v1/admin/system-schedules/{name}/run`). The scheduler runs the same work for every tenant on its cron.

use crate::runtime::{JobContext, JobError};
use crm_shared::TenantId;
use serde_json::Value;

pub async fn run(context: &JobContext) -> Result<Option<Value>, JobError> {
    let name = context.job.payload.get("name").and_then(Value::as_str).unwrap_or_default();
    let schedule = crm_shared::maintenance::by_name(name)
        .ok_or_else(|| JobError::Permanent(format!("no built-in schedule {name:?}")))?;
    let settings = context
        .runtime
        .settings
        .clone()
        .ok_or_else(|| JobError::Permanent("this worker was started without settings".into()))?;
    context.checkpoint()?;
    let tenant = TenantId(context.job.tenant_id);
    let outcome = crm_shared::maintenance::run(
        schedule,
        &context.runtime.pool,
        &context.runtime.storage,
        &settings,
        Some(tenant),
    )
    .await?;
    Ok(Some(outcome))
}
