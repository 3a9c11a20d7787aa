//! A real Postgres restart (contract §6: an import interrupted by a Postgres restart resumes and ends with
//! every valid row written once). The cluster is the test's own, so stopping it leaves the suite's Postgres
//! alone: stopped with `pg_ctl -m fast` while an import writes its batches, kept down, started again.

use crm_tests::{PrivatePostgres, Reply, Session, TestApp, valid_leads_csv, wait_processed};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A readiness probe that does not answer is no better than none: each `/ready` must answer within this.
const READY_ANSWER_BOUND: Duration = Duration::from_secs(3);

/// GETs `/ready` until it answers `status`; returns that answer and how long it took to come back.
async fn wait_ready(app: &TestApp, status: StatusCode, timeout: Duration) -> (Reply, Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let asked = Instant::now();
        let response = app
            .client
            .get(format!("{}/ready", app.address))
            .timeout(READY_ANSWER_BOUND)
            .send()
            .await
            .unwrap_or_else(|error| panic!("/ready did not answer within {READY_ANSWER_BOUND:?}: {error}"));
        let reply = TestApp::read(response).await;
        if reply.status == status {
            return (reply, asked.elapsed());
        }
        assert!(Instant::now() < deadline, "/ready never answered {status}; last: {} {}", reply.status, reply.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn upload_leads(app: &TestApp, admin: &Session, rows: usize, tag: &str) -> Uuid {
    let reply = app.upload(admin, "leads.csv", valid_leads_csv(rows, tag), &[("entity", "leads")]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    reply.id()
}

async fn lead_counts(app: &TestApp, tenant: Uuid) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT lower(email)) FROM leads WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .expect("counts")
}

fn job_id_of(import: &Value) -> Uuid {
    Uuid::parse_str(import["job_id"].as_str().expect("job id")).expect("uuid")
}

#[tokio::test]
async fn a_postgres_restart_mid_import_makes_ready_name_postgres_and_the_import_ends_with_every_row_once() {
    let postgres = PrivatePostgres::start_new().await;
    let app = TestApp::spawn_on(postgres.url.clone()).await;
    let mut worker = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;
    const ROWS: i64 = 150_000;
    let id = upload_leads(&app, &admin, ROWS as usize, "restart").await;
    let committed = wait_processed(&app, id, 1, Duration::from_secs(60)).await;
    assert!(committed < ROWS, "the import finished before Postgres could be stopped ({committed} rows)");

    let stopped_at = Instant::now();
    postgres.stop_fast().await;
    let (down, answered_in) = wait_ready(&app, StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(20)).await;
    assert_eq!(down.body, json!({"status": "not_ready", "postgres": false, "redis": true}), "names Postgres only");
    println!("/ready answered 503 {:?} after the stop, in {answered_in:?}", stopped_at.elapsed());
    // Kept down a few seconds more, so the worker's hand-off, recovery and heartbeat loops meet the outage too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (still_down, _) = wait_ready(&app, StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(20)).await;
    assert_eq!(still_down.body["postgres"], false, "{}", still_down.body);
    postgres.start().await;
    let restarted_at = Instant::now();
    let (up, _) = wait_ready(&app, StatusCode::OK, Duration::from_secs(30)).await;
    assert_eq!(up.body, json!({"status": "ready", "postgres": true, "redis": true}));
    println!("Postgres was down {:?}; /ready 200 {:?} after the start", stopped_at.elapsed(), restarted_at.elapsed());

    let done = app.wait_import(&admin, id, Duration::from_secs(60)).await;
    println!("the import ended {:?} after the start", restarted_at.elapsed());
    assert_eq!(
        (&done["status"], &done["total_rows"], &done["processed_rows"], &done["created"], &done["failed"]),
        (&json!("completed"), &json!(ROWS), &json!(ROWS), &json!(ROWS), &json!(0)),
        "{done}"
    );
    assert_eq!(lead_counts(&app, admin.tenant_id).await, (ROWS, ROWS), "every row once");
    let job = app.get(&format!("/api/v1/jobs/{}", job_id_of(&done)), &admin).await;
    assert_eq!(job.status, StatusCode::OK, "{}", job.body);
    // The stop cut the first attempt's batch. The job was queued again: by its transient failure when the worker
    // could record it, or else (Postgres still down then) by the dispatcher once the stopped heartbeat went
    // stale. The second claim resumed at the import's checkpoint; the import's own attempt (its count of
    // retries of failed rows) stays 1.
    assert_eq!((&job.data()["status"], &job.data()["attempts"]), (&json!("succeeded"), &json!(2)), "{}", job.body);
    assert_eq!(done["attempt"], 1, "a resume, not a retry of failed rows: {done}");

    assert!(worker.child.try_wait().expect("poll the worker").is_none(), "the worker outlived the outage");
    assert!(!worker.output().iter().any(|line| line.contains("panicked")), "no task of the worker panicked");
    let second = upload_leads(&app, &admin, 1_000, "after").await;
    let after = app.wait_import(&admin, second, Duration::from_secs(30)).await;
    assert_eq!((&after["status"], &after["created"]), (&json!("completed"), &json!(1_000)), "{after}");
    assert_eq!(lead_counts(&app, admin.tenant_id).await, (ROWS + 1_000, ROWS + 1_000));
}
