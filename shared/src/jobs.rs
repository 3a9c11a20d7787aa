//! Job vocabulary shared by the API (which records and enqueues jobs) and the worker (which runs them). The
//! values match the `jobs` table's CHECK constraints and contract §5.

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Import,
    Export,
    Report,
    Email,
    Rollup,
    /// A no-op, or a few checkpointed steps: checks the pipeline end to end (operators, tests, benchmarks).
    Probe,
    /// A built-in schedule run now for one tenant (`POST /api/v1/admin/system-schedules/{name}/run`).
    Maintenance,
}

impl JobKind {
    pub const ALL: [JobKind; 7] = [
        JobKind::Import,
        JobKind::Export,
        JobKind::Report,
        JobKind::Email,
        JobKind::Rollup,
        JobKind::Probe,
        JobKind::Maintenance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Import => "import",
            JobKind::Export => "export",
            JobKind::Report => "report",
            JobKind::Email => "email",
            JobKind::Rollup => "rollup",
            JobKind::Probe => "probe",
            JobKind::Maintenance => "maintenance",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text.trim())
    }
}

/// A job's life: `queued` → `running` → one of the final states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text.trim())
    }
}

/// What travels through Redis: only the job's identity. Everything else is read from Postgres when the job
/// is claimed, so a stale or duplicated delivery can do no harm.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobTask {
    pub job_id: uuid::Uuid,
    pub tenant_id: uuid::Uuid,
    /// The request that enqueued the job, carried into the worker's logs.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The payload of a probe job.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ProbePayload {
    /// Checkpointed steps (0: a no-op).
    #[serde(default)]
    pub steps: u32,
    /// Time each step takes, in milliseconds.
    #[serde(default)]
    pub step_ms: u64,
    /// A fault to inject; honoured only by workers started with `CRM_FAULT_INJECTION=1` (tests).
    #[serde(default)]
    pub fault: Option<ProbeFault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeFault {
    /// Fails for good at once.
    Permanent,
    /// Fails the first attempt, succeeds on the next.
    TransientOnce,
    /// Kills its worker process at the first step, every time.
    CrashWorker,
}

/// The Redis queues, one per family of job kinds, so a slow export never delays an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    Imports,
    Exports,
    Reports,
    Emails,
    /// Operators' probes: on a queue of their own, so a probe never waits behind, or holds up, a tenant's work.
    System,
}

impl Queue {
    pub const ALL: [Queue; 5] = [Queue::Imports, Queue::Exports, Queue::Reports, Queue::Emails, Queue::System];

    pub fn name(self) -> &'static str {
        match self {
            Queue::Imports => "imports",
            Queue::Exports => "exports",
            Queue::Reports => "reports",
            Queue::Emails => "emails",
            Queue::System => "system",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|queue| queue.name() == name.trim())
    }

    /// Where a kind of job runs. Rollups refresh report figures, so they share the reports queue.
    pub fn for_kind(kind: JobKind) -> Self {
        match kind {
            JobKind::Import => Queue::Imports,
            JobKind::Export => Queue::Exports,
            JobKind::Report | JobKind::Rollup => Queue::Reports,
            JobKind::Email => Queue::Emails,
            JobKind::Probe | JobKind::Maintenance => Queue::System,
        }
    }
}

/// Parses a `--queues imports,exports` list; an unknown name is an error naming it.
pub fn parse_queue_list(text: &str) -> Result<Vec<Queue>, String> {
    let mut queues = Vec::new();
    for name in text.split(',').filter(|name| !name.trim().is_empty()) {
        let queue = Queue::parse(name).ok_or_else(|| {
            format!("unknown queue {:?}; the queues are imports, exports, reports, emails, system", name.trim())
        })?;
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    if queues.is_empty() {
        return Err("at least one queue is required".into());
    }
    Ok(queues)
}

/// The apalis-redis storage of one queue. Queue names are set explicitly (apalis would otherwise name the
/// queue after the Rust type) and carry the deployment's Redis prefix; the API and the worker build them
/// here, so they always agree.
pub fn queue_storage(
    connection: redis::aio::ConnectionManager,
    redis_prefix: &str,
    queue: Queue,
) -> apalis_redis::RedisStorage<JobTask> {
    apalis_redis::RedisStorage::new(connection).with_config(queue_config(redis_prefix, queue))
}

pub fn queue_config(redis_prefix: &str, queue: Queue) -> apalis_redis::Config {
    apalis_redis::Config::default()
        .queue(format!("{redis_prefix}:jobs:{}", queue.name()))
        // apalis' own orphan recovery (heartbeat × missed beats) is only a backstop: the dispatcher recovers
        // jobs of dead workers from their Postgres heartbeats much sooner.
        .heartbeat_interval(std::time::Duration::from_secs(5))
        .missed_heartbeats(12)
        // Postgres holds every job's lease (claim, heartbeat, fencing); apalis' own lock would cost a Lua
        // script per batch whose LREM scans the whole waiting list for every task, for nothing we read.
        .lock_tasks(false)
        // One PUBLISH per task to every subscriber; workers are woken by `wake_channel`, once per push instead.
        .emit_events(false)
}

/// The channel a push announces itself on, so idle workers fetch at once instead of at their next poll.
pub fn wake_channel(config: &apalis_redis::Config) -> String {
    format!("{}:wake", config.active_jobs_list())
}

/// A fresh Redis task id: a job handed over again (after a loss or a retry) is a new task, never deduplicated
/// away by an old one.
pub fn new_task_id() -> String {
    ulid::Ulid::new().to_string()
}

/// Hands jobs to a queue in one Redis call, each as the task of the given id, then wakes the queue's idle
/// workers.
pub async fn push_to_redis(
    storage: &mut apalis_redis::RedisStorage<JobTask>,
    jobs: Vec<(JobTask, String)>,
) -> Result<(), crate::DomainError> {
    use apalis::prelude::TaskSink;
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|(job, task_id)| {
            apalis::prelude::TaskBuilder::new(job).task_id(apalis::prelude::TaskId::from(task_id)).build()
        })
        .collect();
    storage
        .push_all(&mut futures::stream::iter(tasks))
        .await
        .map_err(|error| crate::DomainError::Unavailable("redis", anyhow::anyhow!("pushing jobs: {error}")))?;
    // A lost wake-up costs only latency: workers also poll (`crm_worker::POLL_INTERVAL`).
    let channel = wake_channel(storage.get_config());
    let _: Result<i64, _> = redis::cmd("PUBLISH").arg(channel).arg(1).query_async(storage.get_connection()).await;
    Ok(())
}

/// Hands just-committed jobs to Redis at once, so an idle worker, woken by the push, starts them at once. A
/// failure here loses nothing: the jobs stay in Postgres unmarked, and the dispatcher hands them over.
pub async fn hand_off_now(
    pool: &sqlx::PgPool,
    redis: redis::aio::ConnectionManager,
    redis_prefix: &str,
    queue: Queue,
    jobs: Vec<JobTask>,
) -> Result<(), crate::DomainError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = jobs.iter().map(|job| job.job_id).collect();
    let task_ids: Vec<String> = jobs.iter().map(|_| new_task_id()).collect();
    let mut storage = queue_storage(redis, redis_prefix, queue);
    push_to_redis(&mut storage, jobs.into_iter().zip(task_ids.iter().cloned()).collect()).await?;
    let mut conn = pool.acquire().await?;
    crate::db::jobs::mark_dispatched(&mut conn, &ids, &task_ids).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lists_parse_and_reject_unknown_names() {
        assert_eq!(parse_queue_list("imports, emails,imports"), Ok(vec![Queue::Imports, Queue::Emails]));
        assert!(parse_queue_list("imports,printing").expect_err("unknown queue").contains("\"printing\""));
        assert!(parse_queue_list(" , ").is_err());
    }

    #[test]
    fn every_kind_has_a_queue() {
        assert_eq!(Queue::for_kind(JobKind::Rollup), Queue::Reports);
        assert_eq!(Queue::for_kind(JobKind::Import), Queue::Imports);
    }
}
