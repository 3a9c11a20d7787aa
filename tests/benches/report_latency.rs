//! Report and dashboard latency at scale: seeds a tenant with 1,000,000 leads (and the seeder's clients,
//! projects, interactions and tickets; a second small tenant beside it), then drives 32 concurrent clients at
//! each of the ten reports and the dashboard as an admin, a manager and a sales rep, and prints p50/p95/p99.
//! Dated reports are measured without a range and with a range that changes from request to request (so no
//! two neighbouring requests read the same buckets). The dashboard is measured through its cache and with the
//! cache off (`DASHBOARD_CACHE_SECONDS=0`, every answer computed).
//!
//! Baseline, measured in the same run: the pipeline's lead counts recounted from the `leads` table with one
//! plain `GROUP BY` (what the reports would cost without the rollup), timed alone, one query at a time.
//!
//! Run with `cargo bench -p crm-tests --bench report_latency` (`BENCH_LEADS`, `BENCH_REQUESTS` override the
//! sizes; `BENCH_ONLY=pipeline,dashboard` measures only those).

use crm_api::Application;
use crm_shared::config::Settings;
use crm_shared::domain::enums::Role;
use crm_shared::seed::{SeedPlan, SeededUser, seed_demo};
use crm_tests::environment;
use sqlx::PgPool;
use std::time::{Duration, Instant};

const CLIENTS: usize = 32;

/// A line's request path for the i-th request.
type PathOf = Box<dyn Fn(usize) -> String + Send + Sync>;
/// The product's ceiling for a report's p95.
const P95_CEILING_MS: f64 = 500.0;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Reports that take `start_date`/`end_date`.
const DATED: [&str; 8] = [
    "pipeline",
    "lead-source",
    "conversion-rate",
    "revenue-by-client",
    "user-activity",
    "client-retention",
    "project-performance",
    "revenue-forecast",
];
const UNDATED: [&str; 2] = ["follow-ups", "upcoming-tasks"];

/// A range of 30 to 120 days somewhere in the seeded two years, different for every request.
fn range_for(i: usize) -> String {
    let today = chrono::Utc::now().date_naive();
    let start = today - chrono::Duration::days(30 + ((i * 37) % 680) as i64);
    let end = start + chrono::Duration::days(30 + ((i * 11) % 90) as i64);
    format!("start_date={start}&end_date={end}")
}

fn main() -> anyhow::Result<()> {
    let server_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let client_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let leads = env_number("BENCH_LEADS", 1_000_000);
    let requests = env_number("BENCH_REQUESTS", 640) as usize;
    let only: Option<Vec<String>> =
        std::env::var("BENCH_ONLY").ok().map(|names| names.split(',').map(str::to_owned).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|names| names.iter().any(|n| n == name));

    let (database_url, report) = server_runtime.block_on(prepare_database(leads))?;
    println!(
        "seeded {} leads, {} clients, {} projects, {} interactions, {} tickets in {:.1} s (rollups folded, VACUUM ANALYZEd)",
        report.leads, report.clients, report.projects, report.interactions, report.tickets, report.seconds
    );

    let mut bases = Vec::new();
    for cache_seconds in ["60", "0"] {
        let mut env = environment(&database_url, &format!("bench-reports-{cache_seconds}"));
        // One tenant alone at full speed: the per-tenant limits (measured by tenant_fairness) are lifted.
        env.insert("USER_REQUESTS_PER_MINUTE".into(), "100000000".into());
        env.insert("TENANT_REQUESTS_PER_MINUTE".into(), "100000000".into());
        env.insert("TENANT_MAX_CONCURRENT_REQUESTS".into(), CLIENTS.to_string());
        env.insert("DASHBOARD_CACHE_SECONDS".into(), cache_seconds.into());
        let settings = Settings::from_lookup(|name| env.get(name).cloned())?;
        let app = server_runtime.block_on(Application::build(settings))?;
        bases.push(format!("http://127.0.0.1:{}", app.port()));
        server_runtime.spawn(app.run_until_stopped(tokio_util::sync::CancellationToken::new()));
    }
    let (cached, uncached) = (bases[0].clone(), bases[1].clone());

    client_runtime.block_on(async {
        let pool = PgPool::connect(&database_url).await?;
        baseline(&pool, report.tenant_id.as_uuid()).await?;
        let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build()?;
        let first = |role: Role| -> anyhow::Result<&SeededUser> {
            report.users.iter().find(|u| u.role == role).ok_or_else(|| anyhow::anyhow!("no {role} seeded"))
        };
        let people =
            [("admin", first(Role::Admin)?), ("manager", first(Role::Manager)?), ("sales", first(Role::Sales)?)];
        println!(
            "\n{CLIENTS} concurrent clients, {requests} requests per line (after {} warm-up requests)",
            requests / 10
        );
        let mut worst: (f64, String) = (0.0, String::new());
        for (role, user) in people {
            let token = login(&client, &cached, &user.email).await?;
            let mut lines: Vec<(String, String, PathOf)> = Vec::new();
            for name in DATED {
                if !wanted(name) || (name == "user-activity" && role == "sales") {
                    continue;
                }
                lines.push((
                    format!("{role}: {name}"),
                    cached.clone(),
                    Box::new(move |_| format!("/api/v1/reports/{name}")),
                ));
                lines.push((
                    format!("{role}: {name} (range)"),
                    cached.clone(),
                    Box::new(move |i| format!("/api/v1/reports/{name}?{}", range_for(i))),
                ));
            }
            for name in UNDATED {
                if wanted(name) {
                    lines.push((
                        format!("{role}: {name}"),
                        cached.clone(),
                        Box::new(move |_| format!("/api/v1/reports/{name}")),
                    ));
                }
            }
            if wanted("dashboard") {
                lines.push((
                    format!("{role}: dashboard (cache)"),
                    cached.clone(),
                    Box::new(|_| "/api/v1/dashboard/metrics".into()),
                ));
                lines.push((
                    format!("{role}: dashboard (computed, cache off)"),
                    uncached.clone(),
                    Box::new(|_| "/api/v1/dashboard/metrics".into()),
                ));
            }
            for (name, base, path) in lines {
                let path: std::sync::Arc<dyn Fn(usize) -> String + Send + Sync> = path.into();
                let p95 = run_line(&client, &base, &token, &name, requests, path).await?;
                if p95 > worst.0 {
                    worst = (p95, name);
                }
            }
        }
        println!(
            "\nworst p95: {:.1} ms ({}); ceiling {P95_CEILING_MS} ms: {}",
            worst.0,
            worst.1,
            if worst.0 < P95_CEILING_MS { "met" } else { "NOT met" }
        );
        anyhow::Ok(())
    })?;
    Ok(())
}

/// The pipeline's lead counts recounted from the raw table, one query at a time.
async fn baseline(pool: &PgPool, tenant: uuid::Uuid) -> anyhow::Result<()> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM leads WHERE tenant_id = $1 AND deleted_at IS NULL GROUP BY status",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await?;
        times.push(started.elapsed());
        anyhow::ensure!(rows.iter().map(|row| row.1).sum::<i64>() > 0, "no leads counted");
    }
    times.sort();
    println!(
        "baseline: the pipeline's lead counts by a plain GROUP BY over the tenant's leads, alone: median {:.1} ms (of 5)",
        ms(times[2])
    );
    Ok(())
}

async fn prepare_database(leads: u64) -> anyhow::Result<(String, crm_shared::seed::SeedReport)> {
    let url = crm_tests::recreate_migrated_database("crm_bench_reports").await;
    let pool = PgPool::connect(&url).await?;
    let plan = SeedPlan {
        tenant_name: "Benchmark".into(),
        admin_email: format!("admin-{}@bench.test", uuid::Uuid::new_v4().simple()),
        password: crm_tests::PASSWORD.into(),
        leads,
    };
    let report = seed_demo(&pool, &plan).await?;
    let other =
        SeedPlan { admin_email: format!("other-{}@bench.test", uuid::Uuid::new_v4().simple()), leads: 10_000, ..plan };
    seed_demo(&pool, &other).await?;
    pool.close().await;
    Ok((url, report))
}

async fn login(client: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<String> {
    let reply: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "email": email, "password": crm_tests::PASSWORD }))
        .send()
        .await?
        .json()
        .await?;
    reply["data"]["token"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("login failed: {reply}"))
}

/// One line: warm-up, then `requests` over `CLIENTS` concurrent clients; prints and returns the p95 in ms.
async fn run_line(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    requests: usize,
    path: std::sync::Arc<dyn Fn(usize) -> String + Send + Sync>,
) -> anyhow::Result<f64> {
    drive(client, base, token, requests / 10, path.clone()).await?;
    let started = Instant::now();
    let mut latencies = drive(client, base, token, requests, path).await?;
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| ms(latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)]);
    println!(
        "{name:<48} p50 {:>7.1} ms   p95 {:>7.1} ms   p99 {:>7.1} ms   {:>6.0} req/s",
        percentile(0.50),
        percentile(0.95),
        percentile(0.99),
        requests as f64 / elapsed.as_secs_f64(),
    );
    Ok(percentile(0.95))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `requests` requests spread over `CLIENTS` concurrent clients; every response must be 200.
async fn drive(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    requests: usize,
    path: std::sync::Arc<dyn Fn(usize) -> String + Send + Sync>,
) -> anyhow::Result<Vec<Duration>> {
    let mut tasks = Vec::new();
    for worker in 0..CLIENTS {
        let (client, base, token, path) = (client.clone(), base.to_owned(), token.to_owned(), path.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = worker;
            while i < requests {
                let started = Instant::now();
                let response = client.get(format!("{base}{}", path(i))).bearer_auth(&token).send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                latencies.push(started.elapsed());
                anyhow::ensure!(status == reqwest::StatusCode::OK, "{status}: {}", String::from_utf8_lossy(&body));
                i += CLIENTS;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}
