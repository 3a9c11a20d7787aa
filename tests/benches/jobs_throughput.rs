//! Job platform throughput and pickup latency, through the real enqueue path and real crm-worker processes:
//! - throughput: N no-op probe jobs committed to Postgres, then drained by one and by two worker processes
//!   (jobs/s from the first job's start to the last job's end, read from Postgres);
//! - enqueue: the API's single-job path (row in a tenant transaction, commit, hand-off to Redis), 16 at a time;
//! - pickup latency on an idle worker: enqueue-to-start (`started_at - created_at`), p50 and p99.
//!
//! Run: `cargo build --release --bins && cargo bench -p crm-tests --bench jobs_throughput`
//! (`BENCH_JOBS` overrides N).

use crm_shared::TenantId;
use crm_shared::db::jobs::{self, NewJob};
use crm_shared::jobs::{JobKind, JobTask, Queue};
use crm_tests::{Process, TestApp, environment};
use serde_json::json;
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
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

async fn fresh_app() -> anyhow::Result<TestApp> {
    Ok(TestApp::spawn_on(crm_tests::recreate_migrated_database("crm_bench_jobs").await).await)
}

fn concurrency() -> String {
    std::env::var("BENCH_CONCURRENCY").unwrap_or_else(|_| "64".into())
}

fn start_workers(app: &TestApp, count: usize) -> Vec<Process> {
    let mut env = environment(&app.database_url, &app.redis_prefix);
    // Per-job "job ended" lines (crm_worker::runtime) are off: at thousands of jobs a second, logging them
    // is an operator's choice, not part of the platform's cost.
    env.insert("RUST_LOG".into(), "warn,crm_worker=info,crm_worker::runtime=warn".into());
    env.insert("LOG_FORMAT".into(), "json".into());
    let concurrency = concurrency();
    (0..count)
        .map(|_| Process::start("crm-worker", &["--queues", "system", "--concurrency", &concurrency], &env))
        .collect()
}

async fn stop(workers: Vec<Process>) {
    for mut worker in workers {
        worker.signal(nix::sys::signal::Signal::SIGTERM);
        worker.wait_exit(Duration::from_secs(30)).await;
    }
}

async fn bench() -> anyhow::Result<()> {
    let total: usize = std::env::var("BENCH_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let app = fresh_app().await?;
    let admin = app.tenant().await;
    let tenant = TenantId(admin.tenant_id);
    println!(
        "no-op probe jobs, crm-worker --concurrency {} per process, Postgres and Redis on this machine\n",
        concurrency()
    );

    for processes in [1usize, 2] {
        sqlx::query("DELETE FROM jobs").execute(&app.db).await?;
        let mut tx = crm_shared::db::begin_tenant(&app.db, tenant).await?;
        for chunk in 0..total.div_ceil(10_000) {
            let size = (total - chunk * 10_000).min(10_000);
            jobs::insert_many(&mut tx, tenant, &vec![no_op(); size]).await?;
        }
        tx.commit().await?;
        let workers = start_workers(&app, processes);
        for worker in &workers {
            worker
                .wait_for_line("crm-worker ready", Duration::from_secs(30))
                .await
                .ok_or_else(|| anyhow::anyhow!("worker not ready"))?;
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status <> 'succeeded'").fetch_one(&app.db).await?;
            if left == 0 {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{left} jobs left after 10 minutes");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (seconds, attempts): (f64, i64) = sqlx::query_as(
            "SELECT EXTRACT(EPOCH FROM max(finished_at) - min(started_at))::float8, sum(attempts)::int8 FROM jobs",
        )
        .fetch_one(&app.db)
        .await?;
        println!(
            "throughput, {processes} worker process{}: {total} jobs in {seconds:.2} s = {:.0} jobs/s ({attempts} attempts)",
            if processes == 1 { "" } else { "es" },
            total as f64 / seconds
        );
        stop(workers).await;
    }

    // Enqueue through the API's single-job path, 16 concurrent callers, no worker running.
    sqlx::query("DELETE FROM jobs").execute(&app.db).await?;
    let enqueued = 5_000usize;
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..16 {
        let (db, redis, prefix) = (app.db.clone(), app.redis().await, app.redis_prefix.clone());
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
    println!(
        "enqueue (row + commit + hand-off), 16 callers: {enqueued} jobs in {seconds:.2} s = {:.0} jobs/s",
        enqueued as f64 / seconds
    );
    let workers = start_workers(&app, 1);
    worker_ready(&workers).await?;
    wait_all_done(&app).await?;

    // Pickup latency: one job at a time on an idle worker.
    sqlx::query("DELETE FROM jobs").execute(&app.db).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let redis = app.redis().await;
    for _ in 0..300 {
        enqueue_one(&app.db, redis.clone(), &app.redis_prefix, tenant).await?;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    wait_all_done(&app).await?;
    let mut latencies: Vec<f64> =
        sqlx::query_scalar("SELECT EXTRACT(EPOCH FROM started_at - created_at)::float8 * 1000 FROM jobs")
            .fetch_all(&app.db)
            .await?;
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "pickup latency on an idle worker ({} jobs, enqueue to start): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        at(0.50),
        at(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    stop(workers).await;
    Ok(())
}

async fn enqueue_one(
    db: &sqlx::PgPool,
    redis: redis::aio::ConnectionManager,
    prefix: &str,
    tenant: TenantId,
) -> anyhow::Result<()> {
    let mut tx = crm_shared::db::begin_tenant(db, tenant).await?;
    let job = jobs::insert(&mut tx, tenant, &no_op()).await?;
    tx.commit().await?;
    let task = JobTask { job_id: job.id, tenant_id: job.tenant_id, request_id: None };
    crm_shared::jobs::hand_off_now(db, redis, prefix, Queue::System, vec![task]).await?;
    Ok(())
}

async fn worker_ready(workers: &[Process]) -> anyhow::Result<()> {
    for worker in workers {
        worker
            .wait_for_line("crm-worker ready", Duration::from_secs(30))
            .await
            .ok_or_else(|| anyhow::anyhow!("worker not ready"))?;
    }
    Ok(())
}

async fn wait_all_done(app: &TestApp) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status <> 'succeeded'").fetch_one(&app.db).await?;
        if left == 0 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{left} jobs left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
