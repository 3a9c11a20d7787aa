//! Export speed and memory (issue 10, acceptance 5). A tenant is seeded with 1,000,000 leads (the demo seeder);
//! a real crm-worker process (a fresh one per format, so each peak is its own) exports them, timed from the
//! request to `completed`:
//! - CSV of the default columns, against the baseline of the same run: psql `\copy (SELECT the same columns,
//!   owner emails joined, the same order) TO file csv`, as the table owner (no row-level security);
//! - XLSX of the same rows;
//! - a 50,000-row PDF (a second tenant seeded with 50,000 leads: `PDF_MAX_ROWS`).
//!
//! Prints seconds, rows/s, the file's MiB and the worker's peak memory (VmHWM) for each, and the ratios.
//! Required: CSV / \copy <= 2.0 and every peak <= 256 MiB; aim: CSV <= 1.25, XLSX <= 3 x CSV, peak <= 128 MiB.
//!
//! Run: `cargo build --release --bins && cargo bench -p crm-tests --bench export_throughput`
//! (`BENCH_LEADS` overrides 1,000,000 and `BENCH_PDF_LEADS` 50,000).

use crm_shared::seed::{SeedPlan, seed_demo};
use crm_tests::{Process, Session, TestApp, environment, peak_memory_bytes};
use std::time::{Duration, Instant};

const REQUIRED_CSV_RATIO: f64 = 2.0;
const REQUIRED_PEAK_MIB: f64 = 256.0;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

struct Run {
    seconds: f64,
    rows: i64,
    bytes: u64,
    peak: u64,
}

async fn export(app: &TestApp, session: &Session, body: serde_json::Value) -> anyhow::Result<Run> {
    let mut env = environment(&app.database_url, &app.redis_prefix);
    env.insert("RUST_LOG".into(), "warn".into());
    let mut worker = Process::start("crm-worker", &["--queues", "exports"], &env);
    worker.wait_for_line("crm-worker ready", Duration::from_secs(30)).await;
    let pid = worker.child.id().unwrap_or_default();
    let started = Instant::now();
    let reply = app.post("/api/v1/exports", session, body).await;
    anyhow::ensure!(reply.status.as_u16() == 202, "export: {}", reply.body);
    let id = reply.id();
    let view = loop {
        let reply = app.get(&format!("/api/v1/exports/{id}"), session).await;
        match reply.data()["status"].as_str() {
            Some("completed") => break reply.data().clone(),
            Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(50)).await,
            other => anyhow::bail!("the export ended {other:?}: {}", reply.body),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let peak = peak_memory_bytes(pid).unwrap_or_default();
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = worker.wait_exit(Duration::from_secs(30)).await;
    Ok(Run {
        seconds,
        rows: view["row_count"].as_i64().unwrap_or_default(),
        bytes: view["file_size"].as_u64().unwrap_or_default(),
        peak,
    })
}

fn print(name: &str, run: &Run) {
    println!(
        "{name:<34} {:>7.2} s   {:>9.0} rows/s   {:>7.1} MiB file   worker peak {:>6.1} MiB   ({} rows)",
        run.seconds,
        run.rows as f64 / run.seconds,
        mib(run.bytes),
        mib(run.peak),
        run.rows
    );
}

async fn seed(app: &TestApp, name: &str, leads: u64) -> anyhow::Result<Session> {
    let email = format!("admin-{}@bench-exports.test", uuid::Uuid::new_v4().simple());
    let plan =
        SeedPlan { tenant_name: name.into(), admin_email: email.clone(), password: crm_tests::PASSWORD.into(), leads };
    let started = Instant::now();
    seed_demo(&app.db, &plan).await?;
    println!("seeded {name}: {leads} leads in {:.1} s", started.elapsed().as_secs_f64());
    Ok(app.session(&email).await)
}

async fn bench() -> anyhow::Result<()> {
    let leads = env_number("BENCH_LEADS", 1_000_000);
    let pdf_leads = env_number("BENCH_PDF_LEADS", 50_000);
    let app = TestApp::spawn_configured(
        crm_tests::recreate_migrated_database("crm_bench_exports").await,
        crm_tests::redis_url(),
        &[("USER_REQUESTS_PER_MINUTE", "1000000")],
    )
    .await;
    let big = seed(&app, "Exports", leads).await?;
    let small = seed(&app, "PDF", pdf_leads).await?;

    // The baseline: the same columns and order, owner emails joined, straight out of Postgres.
    let baseline_file =
        std::env::temp_dir().join(format!("crm-bench-export-copy-{}.csv", uuid::Uuid::new_v4().simple()));
    let select = format!(
        "SELECT l.first_name, l.last_name, l.email, l.phone, l.company, l.lead_source, l.status, \
         to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"'), owner.email, l.notes \
         FROM leads l LEFT JOIN users owner ON owner.id = l.assigned_to_user_id \
         WHERE l.tenant_id = '{}' AND l.deleted_at IS NULL ORDER BY l.created_at DESC, l.id DESC",
        big.tenant_id
    );
    let script = format!("\\copy ({select}) TO '{}' WITH (FORMAT csv, HEADER true)\n", baseline_file.display());
    let script_path = std::env::temp_dir().join(format!("crm-bench-export-{}.sql", uuid::Uuid::new_v4().simple()));
    std::fs::write(&script_path, script)?;
    let started = Instant::now();
    let output = std::process::Command::new("psql")
        .arg(&app.database_url)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&script_path)
        .output()?;
    let copy_seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&script_path);
    anyhow::ensure!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
    let copy_bytes = std::fs::metadata(&baseline_file)?.len();
    let _ = std::fs::remove_file(&baseline_file);
    println!(
        "\nbaseline psql \\copy (SELECT ...) TO csv   {copy_seconds:>7.2} s   {:>9.0} rows/s   {:>7.1} MiB file",
        leads as f64 / copy_seconds,
        mib(copy_bytes)
    );

    let csv = export(&app, &big, serde_json::json!({ "entity": "leads", "format": "csv" })).await?;
    print("export CSV (default columns)", &csv);
    let xlsx = export(&app, &big, serde_json::json!({ "entity": "leads", "format": "xlsx" })).await?;
    print("export XLSX (default columns)", &xlsx);
    let pdf = export(&app, &small, serde_json::json!({ "entity": "leads", "format": "pdf" })).await?;
    print("export PDF (default columns)", &pdf);

    let csv_ratio = csv.seconds / copy_seconds;
    let xlsx_ratio = xlsx.seconds / csv.seconds;
    let peak = [csv.peak, xlsx.peak, pdf.peak].into_iter().max().unwrap_or_default();
    println!(
        "\nratio CSV export / \\copy: {csv_ratio:.2} (required <= {REQUIRED_CSV_RATIO}: {}; aim <= 1.25: {})",
        verdict(csv_ratio <= REQUIRED_CSV_RATIO),
        verdict(csv_ratio <= 1.25)
    );
    println!("ratio XLSX / CSV export: {xlsx_ratio:.2} (aim <= 3: {})", verdict(xlsx_ratio <= 3.0));
    println!(
        "largest worker peak: {:.1} MiB (required <= {REQUIRED_PEAK_MIB}: {}; aim <= 128: {})",
        mib(peak),
        verdict(mib(peak) <= REQUIRED_PEAK_MIB),
        verdict(mib(peak) <= 128.0)
    );
    anyhow::ensure!(csv.rows == i64::try_from(leads)? && xlsx.rows == csv.rows, "an export lost rows");
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}
