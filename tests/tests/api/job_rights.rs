//! The job routes follow the rights of what the job is for (issue 9, finding 2): everyone but admins sees,
//! cancels and retries only the jobs they started, and an import's job is seen by whoever sees the import.
//! Someone else's job is a 404, as if it did not exist, and stays as it was.

use crm_tests::{Session, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

async fn upload(app: &TestApp, who: &Session, text: &str) -> (Uuid, Uuid) {
    let reply = app.upload(who, "leads.csv", text.as_bytes().to_vec(), &[("entity", "leads")]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let job = Uuid::parse_str(reply.data()["job_id"].as_str().expect("job id")).expect("uuid");
    (reply.id(), job)
}

fn listed(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(|job| job["id"].as_str().expect("id").to_owned()).collect()
}

#[tokio::test]
async fn only_admins_and_whoever_started_a_job_see_cancel_or_retry_it() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let rep = app.user(&admin, "sales", &[]).await;
    let support = app.user(&admin, "support", &[]).await;
    let readonly = app.user(&admin, "readonly", &[]).await;
    // No worker runs yet, so both jobs stay queued while the others try them.
    let (_, admins_job) = upload(&app, &admin, "first_name,email\nAda,ada@x.test\n").await;
    let (reps_import, reps_job) = upload(&app, &rep, "first_name,email\nBob,bob@x.test\nBad,not-an-email\n").await;

    for (who, name) in [(&rep, "sales"), (&support, "support")] {
        let path = format!("/api/v1/jobs/{admins_job}");
        app.get(&path, who).await.assert_error(StatusCode::NOT_FOUND, "not_found");
        app.post(&format!("{path}/cancel"), who, json!({})).await.assert_error(StatusCode::NOT_FOUND, "not_found");
        app.post(&format!("{path}/retry"), who, json!({})).await.assert_error(StatusCode::NOT_FOUND, "not_found");
        let page = app.get("/api/v1/jobs", who).await;
        assert!(!listed(&page.body).contains(&admins_job.to_string()), "{name} lists the admin's job: {}", page.body);
    }
    app.post(&format!("/api/v1/jobs/{reps_job}/cancel"), &readonly, json!({}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(listed(&app.get("/api/v1/jobs", &readonly).await.body).is_empty(), "readonly started nothing");
    let untouched = app.job(admins_job).await;
    assert_eq!((untouched.status.as_str(), untouched.cancel_requested_at), ("queued", None), "{untouched:?}");

    // The admin sees both; the rep sees their own.
    let all = listed(&app.get("/api/v1/jobs", &admin).await.body);
    assert!(all.contains(&admins_job.to_string()) && all.contains(&reps_job.to_string()), "{all:?}");
    assert_eq!(listed(&app.get("/api/v1/jobs", &rep).await.body), [reps_job.to_string()]);

    // An admin's retry of the rep's import is still the rep's import's job to watch.
    let _worker = app.start_worker(&["--queues", "imports"]).await;
    let done = app.wait_import(&rep, reps_import, Duration::from_secs(60)).await;
    assert_eq!((&done["status"], &done["failed"]), (&json!("completed_with_errors"), &json!(1)), "{done}");
    let retry = app.post(&format!("/api/v1/imports/{reps_import}/retry"), &admin, json!({})).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{}", retry.body);
    let retry_job = retry.data()["job_id"].as_str().expect("job id").to_owned();
    let seen = app.get(&format!("/api/v1/jobs/{retry_job}"), &rep).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let other_rep = app.user(&admin, "sales", &[]).await;
    app.get(&format!("/api/v1/jobs/{retry_job}"), &other_rep).await.assert_error(StatusCode::NOT_FOUND, "not_found");
}
