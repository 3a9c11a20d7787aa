//! API latency under load: seeds a tenant with 1,000,000 leads (timed; the seeder must stay under a minute),
//! then drives 32 concurrent clients against a filtered lead list (`limit=25`) and a lead by id, and prints
//! p50/p95/p99 and throughput. Run with `cargo bench -p crm-tests --bench api_latency`
//! (`BENCH_LEADS` and `BENCH_REQUESTS` override the sizes).

use crm_api::Application;
use crm_shared::config::Settings;
use crm_shared::seed::{SeedPlan, seed_demo};
use crm_tests::environment;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 32;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    // The server gets its own runtime (two worker threads, like a 2-core host); the load generator another.
    let server_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let client_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let leads = env_number("BENCH_LEADS", 1_000_000);
    let requests = env_number("BENCH_REQUESTS", 20_000) as usize;

    let (database_url, report) = server_runtime.block_on(prepare_database(leads))?;
    println!(
        "seeded {} leads, {} clients, {} projects, {} interactions, {} tickets in {:.1} s ({:.0} leads/s incl. users, COPY and ANALYZE)",
        report.leads,
        report.clients,
        report.projects,
        report.interactions,
        report.tickets,
        report.seconds,
        report.leads as f64 / report.seconds
    );
    for copy in &report.copies {
        println!(
            "  COPY {:<13} {:>9} rows in {:>5.1} s ({:>7.0} rows/s)",
            copy.table,
            copy.rows,
            copy.seconds,
            copy.rows as f64 / copy.seconds
        );
    }

    let mut env = environment(&database_url, "bench-latency");
    // One tenant alone, measured at full speed: its request rate and its share of the pool (the limits that
    // keep one tenant from crowding out others, measured by tenant_fairness) are lifted.
    env.insert("USER_REQUESTS_PER_MINUTE".into(), "100000000".into());
    env.insert("TENANT_REQUESTS_PER_MINUTE".into(), "100000000".into());
    env.insert("TENANT_MAX_CONCURRENT_REQUESTS".into(), CLIENTS.to_string());
    let settings = Settings::from_lookup(|name| env.get(name).cloned())?;
    let app = server_runtime.block_on(Application::build(settings))?;
    let base = format!("http://127.0.0.1:{}", app.port());
    server_runtime.spawn(app.run_until_stopped(tokio_util::sync::CancellationToken::new()));

    client_runtime.block_on(async {
        let pool = PgPool::connect(&database_url).await?;
        let admin_email =
            report.users.iter().find(|u| u.role == crm_shared::domain::enums::Role::Admin).map(|u| u.email.clone());
        let rep_email =
            report.users.iter().find(|u| u.role == crm_shared::domain::enums::Role::Sales).map(|u| u.email.clone());
        let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build()?;
        let admin = login(&client, &base, &admin_email.unwrap_or_default()).await?;
        let rep = login(&client, &base, &rep_email.unwrap_or_default()).await?;
        // Random leads of the big tenant (the other tenant's ids would rightly be 404).
        let ids: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM leads TABLESAMPLE SYSTEM (2) WHERE tenant_id = $1 LIMIT 20000")
                .bind(report.tenant_id)
                .fetch_all(&pool)
                .await?;
        let ids = Arc::new(ids);

        let statuses = ["new", "contacted", "qualified", "lost", "converted"];
        let sources = ["Website", "Referral", "Cold%20Call", "Partner", "Trade%20Show"];
        let filtered_list = move |i: usize| {
            let status = statuses[i % 5];
            match i % 3 {
                0 => format!("/api/v1/leads?status={status}&limit=25"),
                1 => format!("/api/v1/leads?status={status}&lead_source={}&limit=25", sources[(i / 3) % 5]),
                _ => format!("/api/v1/leads?lead_source={}&sort=-created_at&limit=25&offset=25", sources[i % 5]),
            }
        };
        println!(
            "\n{CLIENTS} concurrent clients, {requests} requests per scenario (after {} warm-up requests)",
            requests / 10
        );
        run_scenario(&client, &base, &admin, "admin: filtered lead list (limit=25)", requests, filtered_list).await?;
        run_scenario(&client, &base, &rep, "sales rep: own/assigned filtered list (limit=25)", requests, filtered_list)
            .await?;
        let detail_ids = ids.clone();
        run_scenario(&client, &base, &admin, "admin: lead by id", requests, move |i| {
            format!("/api/v1/leads/{}", detail_ids[i % detail_ids.len()])
        })
        .await?;
        anyhow::Ok(())
    })?;
    Ok(())
}

async fn prepare_database(leads: u64) -> anyhow::Result<(String, crm_shared::seed::SeedReport)> {
    let url = crm_tests::recreate_migrated_database("crm_bench_latency").await;
    let pool = PgPool::connect(&url).await?;
    let plan = SeedPlan {
        tenant_name: "Benchmark".into(),
        admin_email: format!("admin-{}@bench.test", uuid::Uuid::new_v4().simple()),
        password: crm_tests::PASSWORD.into(),
        leads,
    };
    let report = seed_demo(&pool, &plan).await?;
    // A second, small tenant, so the big one is not alone in its indexes.
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

async fn run_scenario<F>(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    requests: usize,
    path: F,
) -> anyhow::Result<()>
where
    F: Fn(usize) -> String + Clone + Send + Sync + 'static,
{
    let warm_up = requests / 10;
    drive(client, base, token, warm_up, path.clone()).await?;
    let started = Instant::now();
    let (mut latencies, rows) = drive(client, base, token, requests, path).await?;
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{name:<50} p50 {:>7.2} ms   p95 {:>7.2} ms   p99 {:>7.2} ms   {:>6.0} req/s   ({:.1} rows/response)",
        ms(percentile(0.50)),
        ms(percentile(0.95)),
        ms(percentile(0.99)),
        requests as f64 / elapsed.as_secs_f64(),
        rows as f64 / requests as f64,
    );
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `requests` requests spread over `CLIENTS` concurrent clients; every response must be 200.
async fn drive<F>(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    requests: usize,
    path: F,
) -> anyhow::Result<(Vec<Duration>, usize)>
where
    F: Fn(usize) -> String + Clone + Send + Sync + 'static,
{
    let mut tasks = Vec::new();
    for worker in 0..CLIENTS {
        let (client, base, token, path) = (client.clone(), base.to_owned(), token.to_owned(), path.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut rows = 0usize;
            let mut i = worker;
            while i < requests {
                let started = Instant::now();
                let response = client.get(format!("{base}{}", path(i))).bearer_auth(&token).send().await?;
                let status = response.status();
                let body: serde_json::Value = response.json().await?;
                latencies.push(started.elapsed());
                anyhow::ensure!(status == reqwest::StatusCode::OK, "{status}: {body}");
                rows += body["items"].as_array().map_or(1, Vec::len);
                i += CLIENTS;
            }
            anyhow::Ok((latencies, rows))
        }));
    }
    let mut all = Vec::with_capacity(requests);
    let mut rows = 0;
    for task in tasks {
        let (latencies, task_rows) = task.await??;
        all.extend(latencies);
        rows += task_rows;
    }
    Ok((all, rows))
}
