//! Import throughput, end to end, against its baseline in the same run:
//! - a generated 1,000,000-row leads CSV is uploaded to the real API and imported by a real crm-worker process
//!   (upload start to `completed`, polled every 50 ms); the worker's peak memory (VmHWM) is read from /proc;
//! - the same file is loaded with psql `\copy` into a table equivalent to `leads` (`LIKE leads INCLUDING ALL`:
//!   the same columns, checks, defaults and indexes, including the unique email index, plus the same foreign
//!   keys to tenants and users);
//! - a 10,000-row file, upload to `completed`.
//!
//! Run: `cargo build --release --bins && cargo bench -p crm-tests --bench import_throughput`
//! (`BENCH_ROWS` overrides 1,000,000).

use crm_shared::domain::enums::{LeadSource, LeadStatus};
use crm_tests::{Process, TestApp, environment, peak_memory_bytes};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

/// A leads file the importer and `\copy` both accept as it is: canonical enumerations and E.164 phones (the
/// importer still parses and validates every value).
fn generate(rows: usize, tag: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("crm-bench-leads-{tag}-{rows}.csv"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    writeln!(out, "first_name,last_name,email,phone,company,lead_source,status")?;
    for i in 0..rows {
        writeln!(
            out,
            "First{i},Last{},lead{i}.{tag}@example.com,+1415555{:04},\"Company {}, Inc.\",{},{}",
            i % 1000,
            i % 10_000,
            i % 5000,
            LeadSource::ALL[i % LeadSource::ALL.len()],
            LeadStatus::ALL[i % LeadStatus::ALL.len()]
        )?;
    }
    out.flush()?;
    Ok(path)
}

async fn upload(app: &TestApp, token: &str, path: &Path) -> anyhow::Result<uuid::Uuid> {
    let file = tokio::fs::File::open(path).await?;
    let length = file.metadata().await?.len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), length).file_name("leads.csv");
    let form = reqwest::multipart::Form::new().text("entity", "leads").part("file", part);
    let response =
        app.client.post(format!("{}/api/v1/imports", app.address)).bearer_auth(token).multipart(form).send().await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    anyhow::ensure!(status.as_u16() == 202, "upload answered {status}: {body}");
    Ok(uuid::Uuid::parse_str(body["data"]["id"].as_str().unwrap_or_default())?)
}

async fn wait_completed(app: &TestApp, token: &str, id: uuid::Uuid) -> anyhow::Result<serde_json::Value> {
    loop {
        let response = app.client.get(format!("{}/api/v1/imports/{id}", app.address)).bearer_auth(token).send().await?;
        let body: serde_json::Value = response.json().await?;
        match body["data"]["status"].as_str() {
            Some("completed") => return Ok(body["data"].clone()),
            Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => anyhow::bail!("the import did not complete: {body}"),
        }
    }
}

async fn bench() -> anyhow::Result<()> {
    let rows: usize = std::env::var("BENCH_ROWS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let app = TestApp::spawn_on(crm_tests::recreate_migrated_database("crm_bench_imports").await).await;
    let admin = app.tenant().await;
    let mut env = environment(&app.database_url, &app.redis_prefix);
    env.insert("RUST_LOG".into(), "warn".into());
    let mut worker = Process::start("crm-worker", &["--queues", "imports"], &env);
    worker.wait_for_line("crm-worker ready", Duration::from_secs(30)).await;
    let pid = worker.child.id().unwrap_or_default();

    println!("generating {rows} rows ...");
    let big = generate(rows, "big")?;
    let size = std::fs::metadata(&big)?.len();
    println!("file: {} ({:.1} MiB)", big.display(), size as f64 / 1048576.0);

    // Baseline: psql \copy into an equivalent table.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE bench_copy_leads (LIKE leads INCLUDING ALL); \
         ALTER TABLE bench_copy_leads ALTER COLUMN id SET DEFAULT gen_random_uuid(), \
             ALTER COLUMN tenant_id SET DEFAULT '{tenant}', ALTER COLUMN created_by SET DEFAULT '{user}', \
             ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id), \
             ADD FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id), \
             ADD FOREIGN KEY (tenant_id, assigned_to_user_id) REFERENCES users (tenant_id, id);",
        tenant = admin.tenant_id,
        user = admin.user_id
    )))
    .execute(&app.db)
    .await?;
    let copy_started = Instant::now();
    let output = std::process::Command::new("psql")
        .arg(&app.database_url)
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-c")
        .arg(format!(
            "\\copy bench_copy_leads (first_name, last_name, email, phone, company, lead_source, status) FROM '{}' WITH (FORMAT csv, HEADER true)",
            big.display()
        ))
        .output()?;
    let copy_seconds = copy_started.elapsed().as_secs_f64();
    anyhow::ensure!(output.status.success(), "psql \\copy failed: {}", String::from_utf8_lossy(&output.stderr));
    println!("psql \\copy: {copy_seconds:.2} s ({:.0} rows/s)", rows as f64 / copy_seconds);

    // The import, upload to completed.
    let started = Instant::now();
    let id = upload(&app, &admin.token, &big).await?;
    let uploaded = started.elapsed().as_secs_f64();
    let import = wait_completed(&app, &admin.token, id).await?;
    let import_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(import["created"].as_u64() == Some(rows as u64), "not every row was created: {import}");
    let peak = peak_memory_bytes(pid).unwrap_or(0);
    println!(
        "import: {import_seconds:.2} s upload to completed (upload {uploaded:.2} s), {:.0} rows/s",
        rows as f64 / import_seconds
    );
    println!("ratio import / \\copy: {:.2} (required <= 2.0, aim 1.25)", import_seconds / copy_seconds);
    println!("worker peak memory (VmHWM): {:.1} MiB (required <= 512, aim 256)", peak as f64 / 1048576.0);

    let small = generate(10_000, "small")?;
    let started = Instant::now();
    let id = upload(&app, &admin.token, &small).await?;
    wait_completed(&app, &admin.token, id).await?;
    println!("10,000-row file: {:.2} s upload to completed (required <= 3 s)", started.elapsed().as_secs_f64());

    worker.signal(nix::sys::signal::Signal::SIGTERM);
    worker.wait_exit(Duration::from_secs(30)).await;
    let _ = std::fs::remove_file(big);
    let _ = std::fs::remove_file(small);
    Ok(())
}
