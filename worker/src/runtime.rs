//! Running one job: claim it in Postgres (which counts the attempt), keep its heartbeat, run its kind's
//! handler, and record how it ended. Redis only delivers; every decision is made against Postgres, so a
//! duplicated or stale delivery finds nothing to claim and does nothing.

use crate::ledger::Ledger;
use crate::{import, probe};
use apalis::prelude::{BoxDynError, Data};
use crm_shared::db::jobs::{JobRow, Outcome};
use crm_shared::jobs::{JobKind, JobTask};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

/// How many imports one worker process runs at once; further import jobs wait (running, with their heartbeat)
/// for a slot.
pub const IMPORTS_AT_ONCE: usize = 2;

/// Exponential back-off for transient failures: 2 s, 4 s, 8 s ... capped at 5 minutes.
pub fn backoff(attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.clamp(1, 20) - 1).unwrap_or(0);
    Duration::from_secs(2u64.saturating_pow(exponent + 1)).min(Duration::from_secs(300))
}

/// What a handler reports.
#[derive(Debug)]
pub enum JobError {
    /// Will never work (bad input): the job fails at once with this reason.
    Permanent(String),
    /// May work later (a dependency was down): retried with back-off.
    Transient(String),
    /// Cancellation was requested and honoured at a checkpoint.
    Cancelled,
}

impl From<crm_shared::DomainError> for JobError {
    fn from(error: crm_shared::DomainError) -> Self {
        match error {
            crm_shared::DomainError::Unavailable(..) | crm_shared::DomainError::Internal(_) => {
                JobError::Transient(error.to_string())
            }
            other => JobError::Permanent(other.to_string()),
        }
    }
}

/// Shared by every job a worker process runs.
pub struct JobRuntime {
    pub pool: PgPool,
    pub worker_name: String,
    /// Probe faults are honoured only when the worker was started with CRM_FAULT_INJECTION=1.
    pub fault_injection: bool,
    /// Where uploaded files are read from.
    pub storage: crm_shared::storage::Storage,
    /// Imports reading their files at once in this process: each holds up to a few hundred MiB at worst (an
    /// .xlsx's shared strings), so the process's memory stays bounded whatever --concurrency says.
    pub import_slots: tokio::sync::Semaphore,
    /// Claims and ends, written to Postgres in batches.
    ledger: Ledger,
    /// The jobs running here, each with the token its checkpoints watch.
    running: Mutex<HashMap<Uuid, CancellationToken>>,
}

/// What a handler gets: its job, and checkpoints that honour cancellation.
pub struct JobContext {
    pub job: JobRow,
    pub runtime: Arc<JobRuntime>,
    pub cancelled: CancellationToken,
}

impl JobContext {
    /// Call between units of work: stops the job when its cancellation was requested.
    pub fn checkpoint(&self) -> Result<(), JobError> {
        if self.cancelled.is_cancelled() { Err(JobError::Cancelled) } else { Ok(()) }
    }
}

impl JobRuntime {
    pub fn new(
        pool: PgPool,
        worker_name: String,
        fault_injection: bool,
        storage: crm_shared::storage::Storage,
    ) -> Self {
        let ledger = Ledger::start(pool.clone(), worker_name.clone());
        Self {
            pool,
            worker_name,
            fault_injection,
            storage,
            import_slots: tokio::sync::Semaphore::new(IMPORTS_AT_ONCE),
            ledger,
            running: Mutex::new(HashMap::new()),
        }
    }

    pub fn running_jobs(&self) -> Vec<Uuid> {
        self.running.lock().map(|running| running.keys().copied().collect()).unwrap_or_default()
    }

    /// Marks jobs whose cancellation was requested; they stop at their next checkpoint.
    pub fn cancel(&self, job_ids: &[Uuid]) {
        if let Ok(running) = self.running.lock() {
            for id in job_ids {
                if let Some(token) = running.get(id) {
                    token.cancel();
                }
            }
        }
    }

    async fn execute(self: Arc<Self>, task: JobTask) {
        let job = match self.ledger.claim(task.job_id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                tracing::debug!("nothing to claim: the job is running elsewhere, finished or cancelled");
                return;
            }
            Err(error) => {
                // Left queued: the dispatcher sees Redis no longer has it and hands it over again.
                tracing::warn!(error = %error, "could not claim the job");
                return;
            }
        };
        let started = std::time::Instant::now();
        let kind = JobKind::parse(&job.kind);
        metrics::counter!("jobs_started_total", "kind" => job.kind.clone()).increment(1);
        let cancelled = CancellationToken::new();
        if let Ok(mut running) = self.running.lock() {
            running.insert(job.id, cancelled.clone());
        }
        let job_id = job.id;
        let attempts = job.attempts;
        let kind_label = job.kind.clone();
        let context = JobContext { job, runtime: self.clone(), cancelled };
        let result = match kind {
            Some(JobKind::Probe) => probe::run(&context).await,
            Some(JobKind::Import) => import::run(&context).await,
            other => Err(JobError::Permanent(format!("this worker cannot run {other:?} jobs yet"))),
        };
        if let Ok(mut running) = self.running.lock() {
            running.remove(&job_id);
        }
        let outcome = match result {
            Ok(value) => Outcome::Succeeded(value),
            Err(JobError::Cancelled) => Outcome::Cancelled,
            Err(JobError::Permanent(reason)) => Outcome::Failed(reason),
            Err(JobError::Transient(reason)) => Outcome::Retry { error: reason, delay: backoff(attempts) },
        };
        match self.ledger.finish(job_id, outcome).await {
            Ok(Some(status)) => {
                let status = status.as_str();
                tracing::info!(status, attempts, seconds = started.elapsed().as_secs_f64(), "job ended");
                let labels = [("kind", kind_label.clone()), ("status", status.to_owned())];
                metrics::counter!("jobs_finished_total", &labels).increment(1);
                metrics::histogram!("job_run_duration_seconds", "kind" => kind_label)
                    .record(started.elapsed().as_secs_f64());
            }
            Ok(None) => {
                tracing::warn!("the job was taken from this worker (it was presumed dead); its result is dropped")
            }
            // The heartbeat stops, so recovery queues the job again: it runs once more rather than never.
            Err(error) => tracing::error!(error = %error, "could not record how the job ended"),
        }
    }
}

/// The apalis handler: every outcome is recorded in Postgres, so apalis always sees success and its own
/// retry machinery (25 hard-coded attempts) never runs.
pub async fn handle(task: JobTask, runtime: Data<Arc<JobRuntime>>) -> Result<(), BoxDynError> {
    let span = tracing::info_span!(
        "job",
        job_id = %task.job_id,
        tenant_id = %task.tenant_id,
        request_id = task.request_id.as_deref().unwrap_or_default(),
    );
    let runtime: Arc<JobRuntime> = (*runtime).clone();
    runtime.execute(task).instrument(span).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
