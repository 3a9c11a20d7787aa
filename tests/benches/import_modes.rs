//! What the import modes cost against a big tenant: a tenant seeded with 1,000,000 leads (the demo seeder, as
//! api_latency seeds it), then 50,000-row leads files of one shape, a third of whose emails (every third row,
//! in the case the export happens to use) already exist in the tenant and the rest new. Each is imported by a
//! real crm-worker process, upload start to `completed` (or `completed_with_errors`: create mode fails the
//! existing third as `duplicate_existing`), as
//! - a create-mode import (no lookup: the unique email index refuses the duplicates, ON CONFLICT DO NOTHING),
//! - a dry run (`dry_run=true`: the duplicate lookup, nothing written),
//! - an upsert (`mode=upsert`: the lookup, then an INSERT and an UPDATE).
//!
//! Fairness: every import gets a file of its own whose new emails no other file has, so each create-mode
//! import inserts the same number of new rows and fails the same existing third; all share the same existing
//! emails. The modes run twice, in the order create, dry run, upsert and then upsert, dry run, create, so
//! neither the cache a run warms nor the rows a run adds favours one mode; the ratios divide the sums of each
//! mode's two runs.
//!
//! Before the timed runs: EXPLAIN (custom and generic plan) of the duplicate lookup for the first batch of a
//! dry run's file, run as the worker runs it: the worker's own SQL (`crm_shared::db::import_lookups::
//! LEAD_EMAIL_LOOKUP`, which `existing_by_email` runs for leads), as `crm_app` with `app.tenant_id` set (what
//! `crm_shared::db::begin_tenant` does). After them: EXPLAIN (ANALYZE, BUFFERS) of that batch.
//!
//! Run: `cargo build --release --bins && cargo bench -p crm-tests --bench import_modes`
//! (`BENCH_TENANT_LEADS` overrides 1,000,000 and `BENCH_ROWS` 50,000; the tenant needs at least a third as
//! many leads as the file has rows. An import that has not ended after `BENCH_IMPORT_TIMEOUT_SECS`, 600 by
//! default, is cancelled and ends the run.)

mod common;

use common::{LeadsFileSpec, Owner, env_number, first_errors, mib, upload, wait_finished, write_leads_files};
use crm_shared::db::import_lookups::LEAD_EMAIL_LOOKUP;
use crm_shared::seed::{SeedPlan, seed_demo};
use crm_tests::{Process, TestApp, environment, peak_memory_bytes};
use std::time::{Duration, Instant};

const REQUIRED_RATIO: f64 = 2.0;
/// How long the analysed lookup may run: with a plan that scans the tenant per key it would take hours.
const ANALYZE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    DryRun,
    Upsert,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Create => "create",
            Mode::DryRun => "dry run",
            Mode::Upsert => "upsert",
        }
    }

    fn form_fields(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Mode::Create => &[("mode", "create")],
            Mode::DryRun => &[("mode", "create"), ("dry_run", "true")],
            Mode::Upsert => &[("mode", "upsert")],
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Mode::Create => "create",
            Mode::DryRun => "dryrun",
            Mode::Upsert => "upsert",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let tenant_leads = env_number("BENCH_TENANT_LEADS", 1_000_000);
    let rows = env_number("BENCH_ROWS", 50_000);
    let import_timeout = Duration::from_secs(env_number("BENCH_IMPORT_TIMEOUT_SECS", 600) as u64);
    let database_url = crm_tests::recreate_migrated_database("crm_bench_import_modes").await;
    let pool = sqlx::PgPool::connect(&database_url).await?;
    let plan = SeedPlan {
        tenant_name: "Benchmark".into(),
        admin_email: format!("admin-{}@bench.test", uuid::Uuid::new_v4().simple()),
        password: crm_tests::PASSWORD.into(),
        leads: tenant_leads as u64,
    };
    let report = seed_demo(&pool, &plan).await?;
    println!("seeded a tenant of {} leads in {:.1} s", report.leads, report.seconds);
    // A second, small tenant, so the big one is not alone in its indexes (as api_latency does).
    let other =
        SeedPlan { admin_email: format!("other-{}@bench.test", uuid::Uuid::new_v4().simple()), leads: 10_000, ..plan };
    seed_demo(&pool, &other).await?;
    pool.close().await;

    let app = TestApp::spawn_on(database_url).await;
    let admin = app.session(&plan.admin_email).await;
    let mut env = environment(&app.database_url, &app.redis_prefix);
    env.insert("RUST_LOG".into(), "warn".into());
    let mut worker = Process::start("crm-worker", &["--queues", "imports"], &env);
    worker.wait_for_line("crm-worker ready", Duration::from_secs(30)).await;
    let pid = worker.child.id().unwrap_or_default();

    // The existing third: leads spread over the whole tenant, not its newest pages.
    let wanted = rows.div_ceil(3);
    let existing_emails: Vec<String> = sqlx::query_scalar(
        "SELECT email FROM leads WHERE tenant_id = $1 AND deleted_at IS NULL AND email IS NOT NULL \
         ORDER BY random() LIMIT $2",
    )
    .bind(report.tenant_id)
    .bind(wanted as i64)
    .fetch_all(&app.db)
    .await?;
    anyhow::ensure!(
        existing_emails.len() == wanted,
        "the tenant has {} leads with an email; a {rows}-row file needs {wanted} (raise BENCH_TENANT_LEADS)",
        existing_emails.len()
    );
    let owners: Vec<Owner> = report.users.iter().map(|user| Owner { email: user.email.clone(), id: user.id }).collect();

    let order = [Mode::Create, Mode::DryRun, Mode::Upsert, Mode::Upsert, Mode::DryRun, Mode::Create];
    let temp = std::env::temp_dir();
    let mut files = Vec::new();
    for (run, mode) in order.iter().enumerate() {
        let tag = format!("{}{}", mode.tag(), run + 1);
        let path = temp.join(format!("crm-bench-modes-{tag}-{rows}.csv"));
        let spec = LeadsFileSpec { rows, tag: &tag, owners: &owners, existing_emails: &existing_emails };
        let size = write_leads_files(&spec, &path, None)?;
        files.push((*mode, path, size));
    }
    println!(
        "files: {rows} rows each ({:.1} MiB), {wanted} of whose emails exist in the tenant, the rest new in each file",
        mib(files[0].2)
    );

    // A dry run's file: its new emails are in the tenant neither before nor after the runs.
    let dry_run_file = files.iter().find(|(mode, _, _)| *mode == Mode::DryRun).map(|(_, path, _)| path.clone());
    let keys = first_batch_keys(&dry_run_file.ok_or_else(|| anyhow::anyhow!("the order has no dry run"))?)?;
    print_lookup_plans(&app, report.tenant_id.as_uuid(), &keys).await?;
    println!();

    let existing = wanted as u64;
    let new = (rows - wanted) as u64;
    let mut totals: Vec<(Mode, f64)> = Vec::new();
    let mut finished: Vec<(uuid::Uuid, serde_json::Value)> = Vec::new();
    for (mode, path, _) in &files {
        let started = Instant::now();
        let id = upload(&app, &admin.token, path, mode.form_fields()).await?;
        let Ok(import) = tokio::time::timeout(import_timeout, wait_finished(&app, &admin.token, id)).await else {
            let _ = app
                .client
                .post(format!("{}/api/v1/imports/{id}/cancel", app.address))
                .bearer_auth(&admin.token)
                .send()
                .await;
            anyhow::bail!(
                "{} did not end within {} s (BENCH_IMPORT_TIMEOUT_SECS); cancelled. The lookup's plans above say \
                 why; nothing timed after it would mean anything while the worker is still in that batch",
                mode.name(),
                import_timeout.as_secs()
            );
        };
        let import = import?;
        let seconds = started.elapsed().as_secs_f64();
        let count = |name: &str| import[name].as_u64().unwrap_or_default();
        let expected = match mode {
            Mode::Create | Mode::DryRun => (new, 0, existing),
            Mode::Upsert => (new, existing, 0),
        };
        anyhow::ensure!(
            (count("created"), count("updated"), count("failed")) == expected,
            "{}: created/updated/failed are not {expected:?}: {import}\nfirst errors: {}",
            mode.name(),
            first_errors(&app, &admin.token, id).await
        );
        println!(
            "{:<8} {seconds:>7.2} s upload to {} ({:.0} rows/s; created {}, updated {}, failed {})",
            mode.name(),
            import["status"].as_str().unwrap_or_default(),
            rows as f64 / seconds,
            count("created"),
            count("updated"),
            count("failed"),
        );
        totals.push((*mode, seconds));
        finished.push((id, import));
    }
    let total = |which: Mode| totals.iter().filter(|(mode, _)| *mode == which).map(|(_, seconds)| seconds).sum::<f64>();
    let create = total(Mode::Create);
    for mode in [Mode::DryRun, Mode::Upsert] {
        let ratio = total(mode) / create;
        println!(
            "ratio {} / create: {ratio:.2} (required <= {REQUIRED_RATIO}: {})",
            mode.name(),
            if ratio <= REQUIRED_RATIO { "met" } else { "NOT met" }
        );
    }
    println!("worker peak memory (VmHWM): {:.1} MiB", mib(peak_memory_bytes(pid).unwrap_or(0)));

    print_analyzed_lookup(&app, report.tenant_id.as_uuid(), &keys).await?;
    // Last, so that a late commit of a stale attempt has had time to land.
    report_changes_after_completion(&app, &admin.token, &finished).await?;

    worker.signal(nix::sys::signal::Signal::SIGTERM);
    worker.wait_exit(Duration::from_secs(30)).await;
    for (_, path, _) in files {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// An import's counts must not move once it has reported itself finished (an attempt that lost its job must
/// not commit); says so loudly if one did, e.g. after a lookup slower than the heartbeat window.
async fn report_changes_after_completion(
    app: &TestApp,
    token: &str,
    finished: &[(uuid::Uuid, serde_json::Value)],
) -> anyhow::Result<()> {
    const COUNTS: [&str; 6] = ["total_rows", "processed_rows", "created", "updated", "skipped", "failed"];
    for (id, at_completion) in finished {
        let now: serde_json::Value = app
            .client
            .get(format!("{}/api/v1/imports/{id}", app.address))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let changed: Vec<String> = COUNTS
            .iter()
            .filter(|name| now["data"][**name] != at_completion[**name])
            .map(|name| format!("{name} {} -> {}", at_completion[*name], now["data"][*name]))
            .collect();
        if !changed.is_empty() {
            println!(
                "WARNING: import {id} changed after it reported {}: {}",
                at_completion["status"],
                changed.join(", ")
            );
        }
    }
    Ok(())
}

/// The first batch of `file` as the worker sends it to the lookup: the emails, trimmed and lowercased.
fn first_batch_keys(file: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut reader = csv::Reader::from_path(file)?;
    let email_column = reader
        .headers()?
        .iter()
        .position(|header| header.trim_start_matches('\u{feff}').eq_ignore_ascii_case("email"))
        .ok_or_else(|| anyhow::anyhow!("no Email column in {}", file.display()))?;
    let mut keys = Vec::with_capacity(crm_worker::import::BATCH_ROWS);
    for record in reader.records().take(crm_worker::import::BATCH_ROWS) {
        keys.push(record?.get(email_column).unwrap_or_default().trim().to_lowercase());
    }
    Ok(keys)
}

fn print_plan(title: &str, plan: &[String]) {
    println!("{title}");
    for line in plan {
        println!("  {line}");
    }
}

/// A transaction confined like the worker's (what `crm_shared::db::begin_tenant` does): role `crm_app` and
/// `app.tenant_id` set, so row-level security shapes the plan as it does for the worker.
async fn begin_as_worker(
    app: &TestApp,
    tenant: uuid::Uuid,
) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = app.db.begin().await?;
    sqlx::query("SELECT set_config('role', 'crm_app', true), set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The lookup's plans before anything is timed (EXPLAIN only, nothing runs): the custom plan for one batch
/// of keys, and the generic plan a prepared statement may switch to after five runs (the worker's statements
/// are prepared and cached by sqlx).
async fn print_lookup_plans(app: &TestApp, tenant: uuid::Uuid, keys: &[String]) -> anyhow::Result<()> {
    println!("\nduplicate lookup: import_lookups::LEAD_EMAIL_LOOKUP as crm_app, {} keys", keys.len());
    let mut tx = begin_as_worker(app, tenant).await?;
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {LEAD_EMAIL_LOOKUP}")))
        .bind(keys)
        .fetch_all(&mut *tx)
        .await?;
    print_plan("custom plan (EXPLAIN with this batch's keys):", &plan);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PREPARE bench_duplicate_lookup (text[]) AS {LEAD_EMAIL_LOOKUP}; SET LOCAL plan_cache_mode = force_generic_plan"
    )))
    .execute(&mut *tx)
    .await?;
    let plan: Vec<String> = sqlx::query_scalar("EXPLAIN EXECUTE bench_duplicate_lookup (ARRAY['someone@example.com'])")
        .fetch_all(&mut *tx)
        .await?;
    print_plan("generic plan (EXPLAIN EXECUTE with plan_cache_mode = force_generic_plan):", &plan);
    sqlx::raw_sql("DEALLOCATE bench_duplicate_lookup").execute(&mut *tx).await?;
    tx.rollback().await?;
    Ok(())
}

/// EXPLAIN (ANALYZE, BUFFERS) of the lookup for one batch, after the timed runs, within `ANALYZE_TIMEOUT`.
async fn print_analyzed_lookup(app: &TestApp, tenant: uuid::Uuid, keys: &[String]) -> anyhow::Result<()> {
    let mut tx = begin_as_worker(app, tenant).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET LOCAL statement_timeout = '{}s'", ANALYZE_TIMEOUT.as_secs())))
        .execute(&mut *tx)
        .await?;
    let analyzed: Result<Vec<String>, sqlx::Error> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN (ANALYZE, BUFFERS) {LEAD_EMAIL_LOOKUP}")))
            .bind(keys)
            .fetch_all(&mut *tx)
            .await;
    match analyzed {
        Ok(plan) => {
            print_plan(&format!("\nEXPLAIN (ANALYZE, BUFFERS) of one batch ({} keys), as crm_app:", keys.len()), &plan)
        }
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("57014") => println!(
            "\nEXPLAIN (ANALYZE, BUFFERS) of one batch ({} keys): cancelled after {} s (statement_timeout); the plans \
             above say why",
            keys.len(),
            ANALYZE_TIMEOUT.as_secs()
        ),
        Err(error) => return Err(error.into()),
    }
    tx.rollback().await?;
    Ok(())
}
