//! Keeps Redis in step with Postgres, the source of truth:
//! - hands queued jobs to Redis, keeping each queue's Redis backlog under `MAX_REDIS_BACKLOG` (apalis-redis
//!   unpacks every due task id at once in Lua and dies past ~8,000), however many are queued in Postgres;
//! - hands over again the jobs Redis lost (a failed push, a Redis restarted empty);
//! - queues again, or declares dead, the jobs of workers that stopped beating;
//! - trims apalis' done and dead bookkeeping so Redis memory does not grow forever.
//!
//! Every worker process runs it for its queues; a Postgres advisory lock per queue lets one of them act at a
//! time, and row locks (`SKIP LOCKED`) make every hand-off happen once per pass.

use crm_shared::db::jobs;
use crm_shared::jobs::{JobTask, Queue, queue_config, queue_storage};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most tasks one queue holds in Redis at once (due plus scheduled), far below apalis' ~8,000.
pub const MAX_REDIS_BACKLOG: i64 = 2_000;
/// Most jobs handed over in one pass.
const BATCH: i64 = 1_000;
/// A running job whose heartbeat is older than this is presumed dead with its worker.
pub const STALE_AFTER: Duration = Duration::from_secs(15);
/// A hand-off younger than this is not checked against Redis (the push may still be settling).
const LOSS_CHECK_AFTER: Duration = Duration::from_secs(5);

/// What one hand-off pass found.
enum Pass {
    /// It handed over all it could take: there may be more due.
    More,
    /// Redis holds `MAX_REDIS_BACKLOG` tasks of the queue already.
    BacklogFull,
    /// Nothing (more) is due, or another process holds the queue's hand-off.
    Idle,
}

pub struct Dispatcher {
    pub pool: PgPool,
    pub redis: ConnectionManager,
    pub redis_prefix: String,
}

impl Dispatcher {
    /// Hands over due jobs until `shutdown`: pass after pass while there are more, every 10 ms while the Redis
    /// backlog is full (workers drain it in milliseconds), every 250 ms when idle (the API hands new jobs over
    /// itself; this finds retries, recovered jobs and what a failed push left behind).
    pub async fn run_hand_off(self, queue: Queue, shutdown: CancellationToken) {
        let mut storage = queue_storage(self.redis.clone(), &self.redis_prefix, queue);
        loop {
            let pause = match self.hand_off(queue, &mut storage).await {
                Ok(Pass::More) => Duration::ZERO,
                Ok(Pass::BacklogFull) => Duration::from_millis(10),
                Ok(Pass::Idle) => Duration::from_millis(250),
                Err(error) => {
                    tracing::warn!(queue = queue.name(), error = %error, "hand-off failed; retrying");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn hand_off(
        &self,
        queue: Queue,
        storage: &mut apalis_redis::RedisStorage<JobTask>,
    ) -> Result<Pass, crm_shared::DomainError> {
        let mut tx = self.pool.begin().await?;
        let lock_key = 0x6a6f_6273_0000_i64 + queue as i64;
        let locked = crm_shared::db::try_transaction_lock(&mut tx, lock_key).await?;
        if !locked {
            // Another worker process is handing this queue over.
            return Ok(Pass::Idle);
        }
        let room = MAX_REDIS_BACKLOG - self.backlog(queue).await?;
        if room <= 0 {
            return Ok(Pass::BacklogFull);
        }
        let limit = room.min(BATCH);
        let due = jobs::dispatch_due(&mut tx, queue, limit).await?;
        if due.is_empty() {
            return Ok(Pass::Idle);
        }
        let handed = due.len();
        let tasks = due
            .into_iter()
            .map(|job| {
                (JobTask { job_id: job.id, tenant_id: job.tenant_id, request_id: job.request_id }, job.redis_task_id)
            })
            .collect();
        // Pushed before the commit: a push that fails rolls the marks back for the next pass, and a commit that
        // fails after the push only delivers them twice, which their claim makes harmless.
        crm_shared::jobs::push_to_redis(storage, tasks).await?;
        tx.commit().await?;
        metrics::counter!("jobs_dispatched_total", "queue" => queue.name()).increment(handed as u64);
        Ok(if handed as i64 == limit { Pass::More } else { Pass::Idle })
    }

    /// Tasks of a queue waiting in Redis: due plus scheduled.
    pub async fn backlog(&self, queue: Queue) -> Result<i64, crm_shared::DomainError> {
        let config = queue_config(&self.redis_prefix, queue);
        let mut redis = self.redis.clone();
        let (due, scheduled): (i64, i64) = redis::pipe()
            .llen(config.active_jobs_list())
            .zcard(config.scheduled_jobs_set())
            .query_async(&mut redis)
            .await?;
        Ok(due + scheduled)
    }

    /// Recovery, loss checks and trimming, every two seconds until `shutdown`.
    pub async fn run_maintenance(self, queues: Vec<Queue>, shutdown: CancellationToken) {
        loop {
            match jobs::recover_stale(&self.pool, STALE_AFTER).await {
                Ok((0, 0)) => {}
                Ok((requeued, dead)) => {
                    tracing::warn!(requeued, dead, "recovered the jobs of workers that stopped");
                    metrics::counter!("jobs_recovered_total").increment(requeued);
                    metrics::counter!("jobs_dead_total").increment(dead);
                }
                Err(error) => tracing::warn!(error = %error, "recovering stale jobs failed"),
            }
            for queue in &queues {
                if let Err(error) = self.find_lost(*queue).await {
                    tracing::warn!(queue = queue.name(), error = %error, "checking Redis for lost jobs failed");
                }
                if let Err(error) = self.trim(*queue).await {
                    tracing::warn!(queue = queue.name(), error = %error, "trimming Redis bookkeeping failed");
                }
                if let Ok(backlog) = self.backlog(*queue).await {
                    metrics::gauge!("queue_redis_backlog", "queue" => queue.name()).set(backlog as f64);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    /// Jobs handed to Redis whose task Redis no longer holds go back to the hand-off list.
    async fn find_lost(&self, queue: Queue) -> Result<(), crm_shared::DomainError> {
        let waiting = jobs::waiting_in_redis(&self.pool, queue, LOSS_CHECK_AFTER, 2_000).await?;
        if waiting.is_empty() {
            return Ok(());
        }
        let config = queue_config(&self.redis_prefix, queue);
        let mut pipe = redis::pipe();
        for (_, task_id) in &waiting {
            pipe.hexists(config.job_data_hash(), task_id);
        }
        let mut redis = self.redis.clone();
        let present: Vec<bool> = pipe.query_async(&mut redis).await?;
        let lost: Vec<_> =
            waiting.iter().zip(present).filter(|(_, present)| !present).map(|((id, _), _)| *id).collect();
        if !lost.is_empty() {
            let count = jobs::undispatch(&self.pool, &lost).await?;
            tracing::warn!(queue = queue.name(), count, "Redis lost jobs; handing them over again");
            metrics::counter!("jobs_lost_in_redis_total", "queue" => queue.name()).increment(count);
        }
        Ok(())
    }

    /// Removes finished tasks' data and metadata from Redis (apalis keeps them forever).
    async fn trim(&self, queue: Queue) -> Result<(), crm_shared::DomainError> {
        let config = queue_config(&self.redis_prefix, queue);
        let mut redis = self.redis.clone();
        for set in [config.done_jobs_set(), config.dead_jobs_set()] {
            loop {
                let ids: Vec<String> = redis::cmd("SPOP").arg(&set).arg(1_000).query_async(&mut redis).await?;
                if ids.is_empty() {
                    break;
                }
                let mut pipe = redis::pipe();
                pipe.hdel(config.job_data_hash(), &ids);
                for id in &ids {
                    pipe.del(format!("{}:{id}", config.job_meta_hash()));
                }
                let _: () = pipe.query_async(&mut redis).await?;
            }
        }
        Ok(())
    }
}
