//! Exports under faults (issue 10, acceptance 4): a worker killed with SIGKILL in the middle of a 500,000-row
//! export; another worker completes it with every row exactly once, and no partial file was downloadable.

use crm_shared::seed::{SeedPlan, seed_demo};
use crm_tests::{PASSWORD, TestApp};
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const LEADS: u64 = 500_000;

#[tokio::test]
async fn a_worker_killed_mid_export_leaves_no_partial_file_and_the_next_completes_it_once() {
    let app = TestApp::spawn().await;
    let email = format!("admin-{}@kill.test", uuid::Uuid::new_v4().simple());
    let plan =
        SeedPlan { tenant_name: "Killed".into(), admin_email: email.clone(), password: PASSWORD.into(), leads: LEADS };
    seed_demo(&app.db, &plan).await.expect("seed");
    let admin = app.session(&email).await;

    let mut first = app.start_worker(&["--queues", "exports"]).await;
    let reply = app
        .post(
            "/api/v1/exports",
            &admin,
            json!({ "entity": "leads", "format": "csv", "columns": ["email", "first_name"] }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let export_id = reply.id();
    let job_id = uuid::Uuid::parse_str(reply.data()["job_id"].as_str().expect("job id")).expect("uuid");

    let download = |app: &TestApp| {
        let request =
            app.client.get(format!("{}/api/v1/exports/{export_id}/download", app.address)).bearer_auth(&admin.token);
        async move { request.send().await.expect("download").status() }
    };
    app.wait_job(job_id, Duration::from_secs(120), |job| job.progress_done > 0).await;
    assert_eq!(download(&app).await, StatusCode::CONFLICT, "nothing is downloadable while it runs");
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(10)).await.expect("the worker died");
    let killed_at = app.job(job_id).await.progress_done;
    assert!(killed_at < i64::try_from(LEADS).expect("rows"), "killed before the end ({killed_at} rows)");
    assert_eq!(download(&app).await, StatusCode::CONFLICT, "a killed run left nothing to download");

    let _second = app.start_worker(&["--queues", "exports"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let reply = app.get(&format!("/api/v1/exports/{export_id}"), &admin).await;
        let status = reply.data()["status"].as_str().unwrap_or_default().to_owned();
        if status == "completed" {
            assert_eq!(reply.data()["row_count"], LEADS, "{}", reply.body);
            break;
        }
        assert!(matches!(status.as_str(), "queued" | "running"), "{}", reply.body);
        assert!(tokio::time::Instant::now() < deadline, "the export did not complete: {}", reply.body);
        if status == "running" {
            // The export may finish between the two requests: a download that succeeds must find it completed.
            let downloaded = download(&app).await;
            if downloaded != StatusCode::CONFLICT {
                let now = app.get(&format!("/api/v1/exports/{export_id}"), &admin).await;
                assert_eq!((downloaded, now.data()["status"].as_str()), (StatusCode::OK, Some("completed")));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(app.job(job_id).await.attempts, 2, "the second worker ran it again from the start");

    let response = app
        .client
        .get(format!("{}/api/v1/exports/{export_id}/download", app.address))
        .bearer_auth(&admin.token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.expect("bytes");
    let text = std::str::from_utf8(&bytes[3..]).expect("utf-8");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut emails = HashSet::new();
    let mut rows = 0u64;
    for record in reader.records() {
        let record = record.expect("record");
        rows += 1;
        // Every live lead has its own email (the unique index), so a repeated email is a repeated row.
        assert!(record[0].is_empty() || emails.insert(record[0].to_owned()), "{} is in the file twice", &record[0]);
    }
    assert_eq!(rows, LEADS, "every row once");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM leads WHERE tenant_id = $1 AND deleted_at IS NULL")
        .bind(admin.tenant_id)
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(i64::try_from(rows).expect("rows"), stored);
}

/// Expiry: past `expires_at` the scheduler's file-expiry deletes the file and the export turns `expired` (410 from then on);
/// an import's upload goes `IMPORT_FILE_TTL_DAYS` after its import ended.
#[tokio::test]
async fn expired_exports_and_old_uploads_lose_their_files() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    crm_tests::create_record(&app, &admin, "leads").await;
    let worker = app.start_worker(&["--queues", "imports,exports"]).await;
    let upload = app.upload(&admin, "old.csv", b"first_name\nOld\n".to_vec(), &[("entity", "leads")]).await;
    let import = app.wait_import(&admin, upload.id(), Duration::from_secs(30)).await;
    assert_eq!(import["status"], "completed");
    let reply = app.post("/api/v1/exports", &admin, json!({ "entity": "leads", "format": "csv" })).await;
    let export_id = reply.id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.get(&format!("/api/v1/exports/{export_id}"), &admin).await.data()["status"] != "completed" {
        assert!(tokio::time::Instant::now() < deadline, "the export did not complete");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(worker);
    let storage = std::env::temp_dir().join("crm-test-storage");
    let (export_key, upload_key): (String, String) =
        sqlx::query_as("SELECT e.storage_key, i.storage_key FROM exports e, imports i WHERE e.id = $1 AND i.id = $2")
            .bind(export_id)
            .bind(upload.id())
            .fetch_one(&app.db)
            .await
            .expect("keys");
    assert!(storage.join(&export_key).exists() && storage.join(&upload_key).exists());
    sqlx::query("UPDATE exports SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(export_id)
        .execute(&app.db)
        .await
        .expect("expire");
    sqlx::query("UPDATE imports SET finished_at = now() - interval '31 days' WHERE id = $1")
        .bind(upload.id())
        .execute(&app.db)
        .await
        .expect("age");

    // The scheduler's file-expiry runs when it starts (and every minute after).
    let _scheduler = app.start_scheduler(&[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let view = app.get(&format!("/api/v1/exports/{export_id}"), &admin).await;
        if view.data()["status"] == "expired" {
            assert_eq!(view.data()["download_url"], serde_json::Value::Null);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not expired: {}", view.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!storage.join(&export_key).exists(), "the export's file was deleted");
    let gone = app.get(&format!("/api/v1/exports/{export_id}/download"), &admin).await;
    gone.assert_error(StatusCode::GONE, "export_expired");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while storage.join(&upload_key).exists() {
        assert!(tokio::time::Instant::now() < deadline, "the old upload was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deleted: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT file_deleted_at FROM imports WHERE id = $1")
            .bind(upload.id())
            .fetch_one(&app.db)
            .await
            .expect("import");
    assert!(deleted.is_some());
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 2, "records stay; only files go");
}
