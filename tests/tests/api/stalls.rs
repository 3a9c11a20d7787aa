//! Exactly once under a stalled worker (contract §5, §6): a worker frozen with SIGSTOP past the heartbeat
//! window loses its job to another worker; when it is thawed with SIGCONT, everything it tries to commit for
//! that job is refused (fenced by the attempt it claimed), it stops that run, and it goes on serving other
//! jobs. And a cancelled job stays cancelled when a transient failure follows.

use crm_tests::{Process, Session, TestApp};
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// A worker with its Prometheus endpoint on a free port.
async fn worker_with_metrics(app: &TestApp) -> (Process, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let address = format!("127.0.0.1:{port}");
    let worker = app.start_worker_with(&["--queues", "imports,system"], &[("WORKER_METRICS_ADDR", &address)]).await;
    (worker, address)
}

async fn fenced_total(metrics_address: &str) -> u64 {
    let text = reqwest::get(format!("http://{metrics_address}/metrics"))
        .await
        .expect("scrape the worker")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|line| line.starts_with("jobs_fenced_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

/// `n` lead rows; one in five has no email (so nothing but the fence can keep it from being written twice).
fn leads_csv(n: usize) -> Vec<u8> {
    let mut text = String::from("first_name,last_name,email,company\n");
    for i in 0..n {
        let email = if i % 5 == 4 { String::new() } else { format!("stall{i}@example.com") };
        text.push_str(&format!("Lead{i},Stalled,{email},Company {}\n", i % 31));
    }
    text.into_bytes()
}

async fn processed_rows(app: &TestApp, import_id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT processed_rows FROM imports WHERE id = $1")
        .bind(import_id)
        .fetch_one(&app.db)
        .await
        .expect("import")
}

/// Freezes `frozen` until another worker has claimed the job (attempt 2) and committed `further` more units of
/// progress, then thaws it: both workers now run the same job at once.
async fn take_over_while_frozen(app: &TestApp, frozen: &Process, job_id: Uuid, further: i64) -> Process {
    frozen.signal(Signal::SIGSTOP);
    let frozen_at = app.job(job_id).await.progress_done;
    let second = app.start_worker(&["--queues", "imports,system"]).await;
    let taken = app
        .wait_job(job_id, Duration::from_secs(60), |job| {
            job.attempts == 2 && job.status == "running" && job.progress_done >= frozen_at + further
        })
        .await;
    assert_ne!(taken.worker_name.as_deref(), None, "{taken:?}");
    frozen.signal(Signal::SIGCONT);
    second
}

#[tokio::test]
async fn a_stalled_import_worker_that_wakes_after_a_takeover_writes_nothing_twice() {
    const ROWS: usize = 150_000;
    let app = TestApp::spawn().await;
    let (mut first, metrics) = worker_with_metrics(&app).await;
    let admin: Session = app.tenant().await;
    let upload = app.upload(&admin, "stall.csv", leads_csv(ROWS), &[("entity", "leads")]).await;
    assert_eq!(upload.status, StatusCode::ACCEPTED, "{}", upload.body);
    let import_id = upload.id();
    let job_id = Uuid::parse_str(upload.data()["job_id"].as_str().expect("job id")).expect("uuid");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while processed_rows(&app, import_id).await < 20_000 {
        assert!(tokio::time::Instant::now() < deadline, "the import never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut second = take_over_while_frozen(&app, &first, job_id, 10_000).await;
    let done = app.wait_import(&admin, import_id, Duration::from_secs(240)).await;
    assert_eq!(
        (&done["status"], &done["total_rows"], &done["processed_rows"], &done["created"], &done["failed"]),
        (&json!("completed"), &json!(ROWS), &json!(ROWS), &json!(ROWS), &json!(0)),
        "counts equal to the file: {done}"
    );
    let (leads, with_email, distinct_emails, distinct_names): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(email), count(DISTINCT lower(email)), count(DISTINCT first_name) \
         FROM leads WHERE tenant_id = $1",
    )
    .bind(admin.tenant_id)
    .fetch_one(&app.db)
    .await
    .expect("counts");
    let rows = ROWS as i64;
    assert_eq!((leads, with_email, distinct_emails, distinct_names), (rows, rows * 4 / 5, rows * 4 / 5, rows));
    assert_eq!(app.count_rows("import_errors", Some(admin.tenant_id)).await, 0, "no false errors");
    let job = app.job(job_id).await;
    assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 2), "{job:?}");

    // The thawed worker found out and stopped that run; it is alive and serves the next job on its own.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while fenced_total(&metrics).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the thawed worker never counted a fenced run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(first.child.try_wait().expect("status").is_none(), "the thawed worker is still running");
    second.signal(Signal::SIGKILL);
    second.wait_exit(Duration::from_secs(10)).await.expect("the second worker died");
    let next = app
        .upload(&admin, "next.csv", b"first_name,email\nAfter,after@example.com\n".to_vec(), &[("entity", "leads")])
        .await;
    assert_eq!(next.status, StatusCode::ACCEPTED, "{}", next.body);
    let next = app.wait_import(&admin, next.id(), Duration::from_secs(60)).await;
    assert_eq!((&next["status"], &next["created"]), (&json!("completed"), &json!(1)), "{next}");
}

#[tokio::test]
async fn a_stalled_probe_worker_that_wakes_after_a_takeover_repeats_no_step() {
    const STEPS: i64 = 40;
    let app = TestApp::spawn().await;
    let (mut first, metrics) = worker_with_metrics(&app).await;
    let admin = app.tenant().await;
    let job_id = app.enqueue_probe(admin.tenant_id, json!({ "steps": STEPS, "step_ms": 250 }), 3).await;
    app.wait_job(job_id, Duration::from_secs(30), |job| job.progress_done >= 3).await;

    let _second = take_over_while_frozen(&app, &first, job_id, 2).await;
    let job = app.wait_job(job_id, Duration::from_secs(60), |job| job.status == "succeeded").await;
    assert_eq!((job.attempts, job.progress_done), (2, STEPS), "{job:?}");
    let steps = app.probe_steps(job_id).await;
    assert_eq!(steps.iter().map(|(step, _)| i64::from(*step)).collect::<Vec<_>>(), (1..=STEPS).collect::<Vec<_>>());
    let handed_over = steps.iter().position(|(_, attempt)| *attempt == 2).expect("the second attempt wrote steps");
    assert!(steps[..handed_over].iter().all(|(_, attempt)| *attempt == 1), "attempt 1 wrote a prefix: {steps:?}");
    assert!(steps[handed_over..].iter().all(|(_, attempt)| *attempt == 2), "attempt 2 the rest: {steps:?}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while fenced_total(&metrics).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the thawed worker never counted a fenced run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(first.child.try_wait().expect("status").is_none(), "the thawed worker is still running");
}

#[tokio::test]
async fn a_transient_failure_after_a_cancel_ends_the_job_cancelled() {
    use crm_shared::db::jobs::{self, JobLease, Outcome};
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let job_id = app.enqueue_probe(admin.tenant_id, json!({ "steps": 1 }), 5).await;
    let claimed = jobs::claim_many(&app.db, &[job_id], "test-worker").await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let cancel = app.post(&format!("/api/v1/jobs/{job_id}/cancel"), &admin, json!({})).await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.body);

    let stale = JobLease { job_id, attempt: 0, worker: "test-worker".into() };
    let retry = Outcome::Retry { error: "Postgres went away".into(), delay: Duration::from_secs(2) };
    assert_eq!(jobs::finish(&app.db, &stale, &retry).await.expect("finish"), None, "another attempt's word is refused");
    let lease = JobLease { attempt: 1, ..stale };
    let ended = jobs::finish(&app.db, &lease, &retry).await.expect("finish");
    assert_eq!(ended, Some(crm_shared::jobs::JobStatus::Cancelled));
    let job = app.job(job_id).await;
    assert_eq!(job.status, "cancelled", "never queued again: {job:?}");
    assert!(job.finished_at.is_some(), "{job:?}");
    assert!(jobs::claim_many(&app.db, &[job_id], "another-worker").await.expect("claim").is_empty());
}
