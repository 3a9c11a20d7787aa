//! The probe job: `steps` checkpointed steps, each writing its effect (a `job_probe_steps` row) in the same
//! transaction as its progress, so a resumed probe continues after its last committed step and no step is
//! written twice. With no steps it is a no-op (the benchmark's job).

use crate::runtime::{JobContext, JobError};
use crm_shared::TenantId;
use crm_shared::db::jobs;
use crm_shared::jobs::{ProbeFault, ProbePayload};
use serde_json::{Value, json};
use std::time::Duration;

pub async fn run(context: &JobContext) -> Result<Option<Value>, JobError> {
    let job = &context.job;
    let payload: ProbePayload = serde_json::from_value(job.payload.clone())
        .map_err(|error| JobError::Permanent(format!("bad probe payload: {error}")))?;
    let fault = payload.fault.filter(|_| context.runtime.fault_injection);
    match fault {
        Some(ProbeFault::Permanent) => return Err(JobError::Permanent("the probe was asked to fail".into())),
        Some(ProbeFault::TransientOnce) if job.attempts == 1 => {
            return Err(JobError::Transient("the probe was asked to fail its first attempt".into()));
        }
        _ => {}
    }
    let total = i64::from(payload.steps);
    let tenant = TenantId(job.tenant_id);
    let mut done = job.progress_done;
    while done < total {
        context.checkpoint()?;
        if fault == Some(ProbeFault::CrashWorker) {
            tracing::warn!("the probe is killing its worker, as asked");
            std::process::abort();
        }
        tokio::time::sleep(Duration::from_millis(payload.step_ms)).await;
        let step = done + 1;
        let mut tx = context.begin().await?;
        jobs::record_probe_step(&mut tx, tenant, job.id, step, job.attempts, &context.runtime.worker_name).await?;
        context.commit(tx, Some((step, Some(total)))).await?;
        done = step;
    }
    context.checkpoint()?;
    Ok(Some(json!({ "steps": total })))
}
