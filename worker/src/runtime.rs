//! Running one job: claim it in Postgres (which counts the attempt), keep its heartbeat, run its kind's
//! handler, and record how it ended. Redis only delivers; every decision is made against Postgres, so a
//! duplicated or stale delivery finds nothing to claim and does nothing.

use crate::ledger::Ledger;
use crate::{email, export, import, maintenance, probe, schedule_run};
use apalis::prelude::{BoxDynError, Data};
use crm_shared::db::jobs::{self, JobLease, JobRow, Outcome};
use crm_shared::db::{self as db, Tx};
use crm_shared::jobs::{JobKind, JobTask};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The job is no longer this run's (it stalled past the heartbeat window and another worker took it
    /// over): whatever it tried to commit was refused, and it stops without a word about the job.
    Fenced,
}

/// What the job's `error` says is for the people who read it in the API: which dependency was down, never a
/// raw database error (those can name tables, constraints and values); the detail goes to the worker's log.
impl From<crm_shared::DomainError> for JobError {
    fn from(error: crm_shared::DomainError) -> Self {
        match error {
            crm_shared::DomainError::Unavailable(..) => JobError::Transient(error.to_string()),
            crm_shared::DomainError::Internal(detail) => {
                tracing::warn!(error = %detail, "the job was interrupted by an internal error");
                // Whether it runs again is the job's status (queued, or dead after its last attempt), not this text.
                JobError::Transient(
                    "the job was interrupted by an internal error (the worker's log has the detail)".into(),
                )
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
    /// Imports reading their files at once in this process: each holds up to about 200 MiB at worst (an .xlsx's
    /// shared strings, bounded by `xlsx_check`), so the process's memory stays bounded whatever --concurrency says.
    pub import_slots: tokio::sync::Semaphore,
    /// How long an export's file can be downloaded (`EXPORT_TTL_HOURS`).
    pub export_ttl: std::time::Duration,
    /// Where links in emails point (`PUBLIC_URL`).
    pub public_url: String,
    /// Signs export download links in emails (the API checks them with the same secret).
    pub jwt_secret: String,
    /// Sends the `emails` queue; without `SMTP_URL` it holds them.
    pub mailer: email::Mailer,
    /// The settings the built-in schedules read (retention days, file lifetimes).
    pub settings: Option<Arc<crm_shared::config::Settings>>,
    /// Cached dashboards, dropped after each import batch that wrote records.
    dashboard_cache: Option<crm_shared::dashboard_cache::DashboardCache>,
    /// Claims and ends, written to Postgres in batches.
    ledger: Ledger,
    /// The jobs running here.
    running: Mutex<HashMap<Uuid, RunningJob>>,
}

/// A job running in this process: the attempt it claimed, and the signals its checkpoints watch.
struct RunningJob {
    kind: String,
    attempt: i32,
    signals: RunSignals,
}

#[derive(Clone, Default)]
struct RunSignals {
    cancelled: CancellationToken,
    /// Set when a heartbeat found the job no longer held under this attempt.
    lost: Arc<AtomicBool>,
}

/// What a handler gets: its job, checkpoints that honour cancellation, and fenced transactions.
pub struct JobContext {
    pub job: JobRow,
    pub runtime: Arc<JobRuntime>,
    signals: RunSignals,
}

impl JobContext {
    /// Call between units of work: stops the job when it was lost to another worker or its cancellation was
    /// requested.
    pub fn checkpoint(&self) -> Result<(), JobError> {
        if self.signals.lost.load(Ordering::Acquire) {
            Err(JobError::Fenced)
        } else if self.signals.cancelled.is_cancelled() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// A uuid field of the job's payload (`export_id`, `email_id` …), or a permanent failure naming it.
    pub fn payload_id(&self, field: &str) -> Result<Uuid, JobError> {
        self.job
            .payload
            .get(field)
            .and_then(serde_json::Value::as_str)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| JobError::Permanent(format!("bad {} payload: no {field}", self.job.kind)))
    }

    /// The claim this run holds.
    pub fn lease(&self) -> JobLease {
        JobLease { job_id: self.job.id, attempt: self.job.attempts, worker: self.runtime.worker_name.clone() }
    }

    /// A transaction in the job's tenant for work that `commit` will fence.
    pub async fn begin(&self) -> Result<Tx, JobError> {
        Ok(db::begin_tenant(&self.runtime.pool, crm_shared::TenantId(self.job.tenant_id)).await?)
    }

    /// Commits the run's work with its progress, only while the job is still this run's: otherwise rolls
    /// back, counts `jobs_fenced_total` and answers `Fenced`, which stops the run.
    pub async fn commit(&self, mut tx: Tx, progress: Option<(i64, Option<i64>)>) -> Result<(), JobError> {
        let lease = self.lease();
        if jobs::hold_lease(&mut tx, &lease, progress).await? {
            tx.commit().await.map_err(crm_shared::DomainError::from)?;
            return Ok(());
        }
        let _ = tx.rollback().await;
        if !self.signals.lost.swap(true, Ordering::AcqRel) {
            fenced(&self.job.kind, lease.attempt, "a commit");
        }
        Err(JobError::Fenced)
    }
}

/// Logs and counts (`jobs_fenced_total`) a run that found it no longer holds its job: a commit or the job's end
/// refused, or a heartbeat that found the job taken over. Counted once per run.
fn fenced(kind: &str, attempt: i32, what: &str) {
    tracing::warn!(
        attempt,
        what,
        "fenced: the job was taken over by another worker; this run stops and writes nothing"
    );
    metrics::counter!("jobs_fenced_total", "kind" => kind.to_owned()).increment(1);
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
            export_ttl: std::time::Duration::from_secs(168 * 3600),
            public_url: "http://127.0.0.1:8080".into(),
            jwt_secret: String::new(),
            mailer: email::Mailer::unconfigured(),
            settings: None,
            dashboard_cache: None,
            ledger,
            running: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_dashboard_cache(mut self, cache: crm_shared::dashboard_cache::DashboardCache) -> Self {
        self.dashboard_cache = Some(cache);
        self
    }

    /// Call after a committed write to records the dashboard counts.
    pub async fn dashboards_changed(&self, tenant: crm_shared::TenantId) {
        if let Some(cache) = &self.dashboard_cache {
            cache.invalidate(tenant).await;
        }
    }

    /// Takes what emails and built-in schedules need from the settings: links, their signing key, SMTP.
    pub fn with_settings(mut self, settings: Arc<crm_shared::config::Settings>) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        self.public_url = settings.public_url.clone();
        self.jwt_secret = settings.jwt_secret.expose_secret().to_owned();
        self.mailer = email::Mailer::from_settings(&settings)?;
        self.export_ttl = settings.export_ttl;
        self.settings = Some(settings);
        Ok(self)
    }

    pub fn with_export_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.export_ttl = ttl;
        self
    }

    /// The running jobs, each with the attempt it claimed.
    pub fn running_jobs(&self) -> Vec<(Uuid, i32)> {
        self.running
            .lock()
            .map(|running| running.iter().map(|(id, job)| (*id, job.attempt)).collect())
            .unwrap_or_default()
    }

    /// Passes a heartbeat's answer on: jobs whose cancellation was requested stop at their next checkpoint,
    /// and jobs of `beaten` missing from `held` were taken over, so their runs stop before committing more.
    pub fn heard(&self, beaten: &[(Uuid, i32)], held: &[jobs::HeldJob]) {
        let Ok(running) = self.running.lock() else { return };
        for (id, attempt) in beaten {
            let Some(job) = running.get(id).filter(|job| job.attempt == *attempt) else { continue };
            match held.iter().find(|held| held.id == *id) {
                Some(held) if held.cancel_requested => job.signals.cancelled.cancel(),
                Some(_) => {}
                None => {
                    if !job.signals.lost.swap(true, Ordering::AcqRel) {
                        fenced(&job.kind, *attempt, "the heartbeat");
                    }
                    job.signals.cancelled.cancel();
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
        let signals = RunSignals::default();
        if let Ok(mut running) = self.running.lock() {
            running
                .insert(job.id, RunningJob { kind: job.kind.clone(), attempt: job.attempts, signals: signals.clone() });
        }
        let job_id = job.id;
        let attempts = job.attempts;
        let kind_label = job.kind.clone();
        let context = JobContext { job, runtime: self.clone(), signals };
        let lease = context.lease();
        let result = match kind {
            Some(JobKind::Probe) => probe::run(&context).await,
            Some(JobKind::Import) => import::run(&context).await,
            Some(JobKind::Export) => export::run(&context).await,
            Some(JobKind::Report) => schedule_run::run(&context).await,
            Some(JobKind::Email) => email::run(&context).await,
            Some(JobKind::Maintenance) => maintenance::run(&context).await,
            other => Err(JobError::Permanent(format!("this worker cannot run {other:?} jobs yet"))),
        };
        if let Ok(mut running) = self.running.lock()
            && running.get(&job_id).is_some_and(|job| job.attempt == attempts)
        {
            running.remove(&job_id);
        }
        let outcome = match result {
            Ok(value) => Outcome::Succeeded(value),
            // Counted where the commit was refused; the job belongs to another run now.
            Err(JobError::Fenced) => return,
            Err(JobError::Cancelled) => Outcome::Cancelled,
            Err(JobError::Permanent(reason)) => Outcome::Failed(reason),
            Err(JobError::Transient(reason)) => Outcome::Retry { error: reason, delay: backoff(attempts) },
        };
        match self.ledger.finish(&lease, outcome).await {
            Ok(Some(status)) => {
                let status = status.as_str();
                tracing::info!(status, attempts, seconds = started.elapsed().as_secs_f64(), "job ended");
                let labels = [("kind", kind_label.clone()), ("status", status.to_owned())];
                metrics::counter!("jobs_finished_total", &labels).increment(1);
                metrics::histogram!("job_run_duration_seconds", "kind" => kind_label)
                    .record(started.elapsed().as_secs_f64());
            }
            Ok(None) => {
                if !context.signals.lost.swap(true, Ordering::AcqRel) {
                    fenced(&kind_label, attempts, "the job's end");
                }
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
    fn a_jobs_error_never_carries_a_raw_database_error() {
        let raw = anyhow::anyhow!("duplicate key value violates unique constraint \"leads_secret_idx\"");
        let JobError::Transient(message) = JobError::from(crm_shared::DomainError::Internal(raw)) else {
            panic!("an internal error is worth another try");
        };
        assert!(!message.contains("leads_secret_idx") && message.contains("internal error"), "{message}");
        let down = crm_shared::DomainError::Unavailable("database", anyhow::anyhow!("connection refused"));
        assert!(matches!(JobError::from(down), JobError::Transient(message) if message == "database is unavailable"));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
