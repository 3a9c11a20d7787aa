//! Our side of the comparison: probe jobs through the real enqueue path, run by real crm-worker processes.

use super::{Pickup, Throughput, cpu};
use crm_shared::TenantId;
use crm_shared::db::jobs::{self, NewJob};
use crm_shared::jobs::JobKind;
use crm_tests::{Process, TestApp, environment};
use serde_json::json;
use std::time::{Duration, Instant};

struct PostgresWrites {
    commits: i64,
    updates: i64,
    hot_updates: i64,
    wal_bytes: i64,
}

impl PostgresWrites {
    fn since(&self, before: &PostgresWrites) -> PostgresWrites {
        PostgresWrites {
            commits: self.commits - before.commits,
            updates: self.updates - before.updates,
            hot_updates: self.hot_updates - before.hot_updates,
            wal_bytes: self.wal_bytes - before.wal_bytes,
        }
    }
}

pub struct Ours {
    app: TestApp,
    tenant: TenantId,
    concurrency: usize,
    redis: redis::aio::ConnectionManager,
}

fn no_op() -> NewJob {
    NewJob {
        kind: JobKind::Probe,
        payload: json!({}),
        max_attempts: 3,
        resource: None,
        created_by: None,
        request_id: None,
    }
}

impl Ours {
    pub async fn start(concurrency: usize) -> anyhow::Result<Self> {
        let app = TestApp::spawn_on(crm_tests::recreate_migrated_database("crm_bench_jobs").await).await;
        let tenant = TenantId(app.tenant().await.tenant_id);
        let redis = app.redis().await;
        Ok(Self { app, tenant, concurrency, redis })
    }

    fn start_workers(&self, count: usize) -> Vec<Process> {
        let mut env = environment(&self.app.database_url, &self.app.redis_prefix);
        // Per-job "job ended" lines (crm_worker::runtime) are off: at thousands of jobs a second, logging them
        // is an operator's choice, not part of the platform's cost.
        env.insert("RUST_LOG".into(), "warn,crm_worker=info,crm_worker::runtime=warn".into());
        env.insert("LOG_FORMAT".into(), "json".into());
        let concurrency = self.concurrency.to_string();
        (0..count)
            .map(|_| Process::start("crm-worker", &["--queues", "system", "--concurrency", &concurrency], &env))
            .collect()
    }

    async fn ready(workers: &[Process]) -> anyhow::Result<()> {
        for worker in workers {
            worker
                .wait_for_line("crm-worker ready", Duration::from_secs(30))
                .await
                .ok_or_else(|| anyhow::anyhow!("worker not ready"))?;
        }
        Ok(())
    }

    async fn stop_workers(workers: Vec<Process>) {
        for mut worker in workers {
            worker.signal(nix::sys::signal::Signal::SIGTERM);
            worker.wait_exit(Duration::from_secs(30)).await;
        }
    }

    /// Empties the jobs table between runs (TRUNCATE leaves no dead rows behind to slow the next run).
    async fn clear(&self) -> anyhow::Result<()> {
        sqlx::query("TRUNCATE jobs CASCADE").execute(&self.app.db).await?;
        Ok(())
    }

    pub async fn throughput(&self, total: usize, processes: usize) -> anyhow::Result<Throughput> {
        self.clear().await?;
        let mut tx = crm_shared::db::begin_tenant(&self.app.db, self.tenant).await?;
        for chunk in 0..total.div_ceil(10_000) {
            let size = (total - chunk * 10_000).min(10_000);
            jobs::insert_many(&mut tx, self.tenant, &vec![no_op(); size]).await?;
        }
        tx.commit().await?;
        sqlx::query("VACUUM ANALYZE jobs").execute(&self.app.db).await?;
        let mut redis = self.redis.clone();
        let (redis_before, postgres_before) = (cpu::redis_ms(&mut redis).await?, cpu::processes_named_ms("postgres"));
        let writes_before = self.postgres_writes().await?;
        let workers = self.start_workers(processes);
        Self::ready(&workers).await?;
        self.wait_all_done(Duration::from_secs(600)).await?;
        let workers_cpu_ms = workers.iter().filter_map(|worker| worker.child.id()).map(cpu::process_ms).sum();
        let redis_cpu_ms = cpu::redis_ms(&mut redis).await? - redis_before;
        let postgres_cpu_ms = cpu::processes_named_ms("postgres") - postgres_before;
        // Statistics reach the views within about a second of each transaction's end.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let writes = self.postgres_writes().await?.since(&writes_before);
        let (seconds, attempts): (f64, i64) = sqlx::query_as(
            "SELECT EXTRACT(EPOCH FROM max(finished_at) - min(started_at))::float8, sum(attempts)::int8 FROM jobs",
        )
        .fetch_one(&self.app.db)
        .await?;
        anyhow::ensure!(attempts == total as i64, "{attempts} attempts for {total} jobs: a job ran twice");
        Self::stop_workers(workers).await;
        let per_thousand = |count: i64| count as f64 * 1000.0 / total as f64;
        println!(
            "         Postgres per 1,000 jobs: {:.0} commits, {:.0} row updates ({:.0} HOT), {:.0} KiB of WAL",
            per_thousand(writes.commits),
            per_thousand(writes.updates),
            per_thousand(writes.hot_updates),
            per_thousand(writes.wal_bytes) / 1024.0
        );
        Ok(Throughput { jobs: total, seconds, workers_cpu_ms, redis_cpu_ms, postgres_cpu_ms })
    }

    /// What Postgres has written so far: commits in this database, row updates of `jobs` (and how many were
    /// heap-only, touching no index), WAL bytes.
    async fn postgres_writes(&self) -> anyhow::Result<PostgresWrites> {
        let mut conn = self.app.db.acquire().await?;
        sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut *conn).await?;
        let (commits, updates, hot_updates, wal_bytes): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), \
                    n_tup_upd, n_tup_hot_upd, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8 \
             FROM pg_stat_user_tables WHERE relname = 'jobs'",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(PostgresWrites { commits, updates, hot_updates, wal_bytes })
    }

    /// One job at a time, `gap_ms` apart, on an idle worker: enqueue (`created_at`) to start (`started_at`).
    pub async fn pickup(&self, count: usize, gap_ms: u64) -> anyhow::Result<Pickup> {
        self.clear().await?;
        let workers = self.start_workers(1);
        Self::ready(&workers).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        for _ in 0..count {
            enqueue_one(&self.app.db, self.redis.clone(), &self.app.redis_prefix, self.tenant).await?;
            tokio::time::sleep(Duration::from_millis(gap_ms)).await;
        }
        self.wait_all_done(Duration::from_secs(120)).await?;
        let latencies: Vec<f64> =
            sqlx::query_scalar("SELECT EXTRACT(EPOCH FROM started_at - created_at)::float8 * 1000 FROM jobs")
                .fetch_all(&self.app.db)
                .await?;
        Self::stop_workers(workers).await;
        Ok(Pickup::from_latencies(latencies))
    }

    /// The API's single-job path (row in a tenant transaction, commit, hand-off to Redis), 16 callers at once,
    /// no worker running.
    pub async fn enqueue_rate(&self, enqueued: usize) -> anyhow::Result<String> {
        self.clear().await?;
        let started = Instant::now();
        let mut callers = tokio::task::JoinSet::new();
        for caller in 0..16 {
            let (db, redis, prefix, tenant) =
                (self.app.db.clone(), self.redis.clone(), self.app.redis_prefix.clone(), self.tenant);
            callers.spawn(async move {
                for _ in (caller..enqueued).step_by(16) {
                    enqueue_one(&db, redis.clone(), &prefix, tenant).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(result) = callers.join_next().await {
            result??;
        }
        let seconds = started.elapsed().as_secs_f64();
        // Drain them, so the next run starts from an empty Redis queue.
        let workers = self.start_workers(1);
        Self::ready(&workers).await?;
        self.wait_all_done(Duration::from_secs(300)).await?;
        Self::stop_workers(workers).await;
        Ok(format!("{enqueued} jobs in {seconds:.2} s = {:.0} jobs/s", enqueued as f64 / seconds))
    }

    async fn wait_all_done(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            // Polled rarely and cheaply (the timing comes from the jobs' own timestamps), so the benchmark's
            // own queries barely count in Postgres's CPU figure.
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status <> 'succeeded'")
                .fetch_one(&self.app.db)
                .await?;
            if left == 0 {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{left} jobs left after {limit:?}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn enqueue_one(
    db: &sqlx::PgPool,
    redis: redis::aio::ConnectionManager,
    prefix: &str,
    tenant: TenantId,
) -> anyhow::Result<()> {
    crm_tests::enqueue_probe_on(db, redis, prefix, tenant.0, json!({}), 3).await?;
    Ok(())
}
