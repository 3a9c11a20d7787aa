//! The job platform end to end: real crm-worker processes, real Redis, killed and restarted.

use crm_tests::TestApp;
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_probe_enqueued_through_the_api_runs_and_reports_progress() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut worker = app
        .start_worker_with(&["--queues", "system", "--concurrency", "2"], &[("WORKER_METRICS_ADDR", &metrics_addr)])
        .await;
    let accepted = app.post("/api/v1/admin/probes", &admin, json!({ "steps": 3, "step_ms": 50 })).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let id = accepted.data()["job_id"].as_str().expect("job_id").to_owned();
    assert_eq!(accepted.headers["location"], format!("/api/v1/jobs/{id}").as_str());
    assert_eq!(accepted.data()["status"], "queued");

    let job_id = uuid::Uuid::parse_str(&id).expect("uuid");
    app.wait_job(job_id, Duration::from_secs(20), |job| job.status == "succeeded").await;
    let polled = app.get(&format!("/api/v1/jobs/{id}"), &admin).await;
    let job = polled.data();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["kind"], "probe");
    assert_eq!(job["progress"], json!({ "done": 3, "total": 3, "percent": 100.0 }));
    assert_eq!(job["attempts"], 1);
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());
    assert_eq!(app.probe_steps(job_id).await, [(1, 1), (2, 1), (3, 1)]);

    let listed = app.get("/api/v1/jobs?kind=probe&status=succeeded", &admin).await;
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    let other_tenant = app.tenant().await;
    app.get(&format!("/api/v1/jobs/{id}"), &other_tenant).await.assert_error(StatusCode::NOT_FOUND, "not_found");

    let queues = app.get("/api/v1/admin/queues", &admin).await;
    let system =
        queues.data().as_array().expect("queues").iter().find(|q| q["queue"] == "system").cloned().expect("system");
    assert_eq!(system["live_workers"].as_array().map(Vec::len), Some(1), "{system}");
    assert_eq!(system["succeeded_last_hour"], 1, "{system}");

    let worker_metrics =
        reqwest::get(format!("http://{metrics_addr}/metrics")).await.expect("scrape").text().await.expect("text");
    assert!(worker_metrics.contains("jobs_started_total{kind=\"probe\"} 1"), "{worker_metrics}");
    assert!(worker_metrics.contains("jobs_finished_total{kind=\"probe\",status=\"succeeded\"} 1"), "{worker_metrics}");
    assert!(worker_metrics.contains("job_run_duration_seconds"), "{worker_metrics}");
    let api_metrics =
        app.client.get(format!("{}/metrics", app.address)).send().await.expect("scrape").text().await.expect("text");
    assert!(api_metrics.contains("queue_depth{queue=\"system\"}"), "{api_metrics}");
    assert!(api_metrics.contains("jobs_running{queue=\"system\"}"), "{api_metrics}");
    worker.signal(Signal::SIGTERM);
    assert!(worker.wait_exit(Duration::from_secs(30)).await.is_some_and(|status| status.success()));
}

fn probe(steps: u32, step_ms: u64) -> serde_json::Value {
    json!({ "steps": steps, "step_ms": step_ms })
}

#[tokio::test]
async fn a_worker_killed_mid_job_leaves_it_to_another_and_every_step_happens_once() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let mut first = app.start_worker(&["--queues", "system", "--concurrency", "1"]).await;
    let id = app.enqueue_probe(admin.tenant_id, probe(20, 150), 3).await;
    app.wait_job(id, Duration::from_secs(20), |job| job.progress_done >= 4).await;
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).await.expect("killed");
    let halfway = app.job(id).await;
    assert_eq!(halfway.status, "running", "nobody has noticed yet");

    let mut second = app.start_worker(&["--queues", "system", "--concurrency", "1"]).await;
    let job = app.wait_job(id, Duration::from_secs(60), |job| job.status == "succeeded").await;
    assert_eq!(job.attempts, 2, "one attempt per worker that took it");
    assert_eq!(job.progress_done, 20);
    let steps = app.probe_steps(id).await;
    assert_eq!(
        steps.iter().map(|(step, _)| *step).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>(),
        "every step once"
    );
    assert!(steps.iter().any(|(_, attempt)| *attempt == 1) && steps.iter().any(|(_, attempt)| *attempt == 2));
    second.signal(Signal::SIGTERM);
    second.wait_exit(Duration::from_secs(30)).await.expect("stops");
}

#[tokio::test]
async fn a_job_accepted_before_redis_was_emptied_still_runs() {
    let redis = crm_tests::PrivateRedis::start().await;
    let app = TestApp::spawn_with(crm_tests::fresh_database().await, redis.url.clone()).await;
    let admin = app.tenant().await;
    // Accepted and handed to Redis while no worker runs...
    let id = app.enqueue_probe(admin.tenant_id, probe(2, 10), 3).await;
    assert!(app.job(id).await.status == "queued");
    // ...then Redis loses everything.
    let mut conn = app.redis().await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.expect("flushall");
    let mut worker = app.start_worker(&["--queues", "system"]).await;
    let job = app.wait_job(id, Duration::from_secs(30), |job| job.status == "succeeded").await;
    assert_eq!(job.attempts, 1);
    assert_eq!(app.probe_steps(id).await.len(), 2);
    assert!(worker.wait_for_line("Redis lost jobs", Duration::from_secs(1)).await.is_some(), "{:?}", worker.output());
    worker.signal(Signal::SIGTERM);
    worker.wait_exit(Duration::from_secs(30)).await.expect("stops");
}

#[tokio::test]
async fn a_worker_outlives_a_redis_restart_and_runs_what_comes_after_it_once() {
    let mut redis = crm_tests::PrivateRedis::start().await;
    let app = TestApp::spawn_with(crm_tests::fresh_database().await, redis.url.clone()).await;
    let admin = app.tenant().await;
    let mut worker = app.start_worker(&["--queues", "system"]).await;
    let before = app.enqueue_probe(admin.tenant_id, probe(1, 10), 3).await;
    app.wait_job(before, Duration::from_secs(30), |job| job.status == "succeeded").await;

    // Redis dies and comes back empty: the queue consumers and the wake-up subscription lose their connections.
    redis.restart().await;
    assert!(
        worker.wait_for_line("wake-up subscription ended", Duration::from_secs(10)).await.is_some(),
        "the worker noticed its wake-up subscription was cut: {:?}",
        worker.output()
    );
    let after = app.enqueue_probe(admin.tenant_id, probe(2, 10), 3).await;
    let job = app.wait_job(after, Duration::from_secs(30), |job| job.status == "succeeded").await;
    assert_eq!(job.attempts, 1, "the job ran once");
    assert_eq!(app.probe_steps(after).await.len(), 2, "each step once");
    assert_eq!(app.job(before).await.attempts, 1, "the job finished before the restart did not run again");
    worker.signal(Signal::SIGTERM);
    worker.wait_exit(Duration::from_secs(30)).await.expect("stops");
}

#[tokio::test]
async fn sigterm_drains_running_jobs_within_the_bound_and_loses_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let mut worker = app.start_worker(&["--queues", "system", "--concurrency", "2"]).await;
    let running = app.enqueue_probe(admin.tenant_id, probe(6, 300), 3).await;
    app.wait_job(running, Duration::from_secs(20), |job| job.progress_done >= 1).await;
    let waiting: Vec<_> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(app.enqueue_probe(admin.tenant_id, probe(6, 300), 3).await);
        }
        ids
    };
    let stopping = tokio::time::Instant::now();
    worker.signal(Signal::SIGTERM);
    let status =
        worker.wait_exit(Duration::from_secs(30)).await.expect("exits within the drain bound (20 s) plus start-up");
    assert!(status.success(), "{status:?}");
    assert!(stopping.elapsed() < Duration::from_secs(25), "{:?}", stopping.elapsed());
    assert_eq!(app.job(running).await.status, "succeeded", "the running job was drained to its end");

    // What had not finished runs on the next worker; every job ends succeeded with every step once.
    let mut next = app.start_worker(&["--queues", "system", "--concurrency", "2"]).await;
    for id in waiting.iter().chain([&running]) {
        app.wait_job(*id, Duration::from_secs(60), |job| job.status == "succeeded").await;
        assert_eq!(app.probe_steps(*id).await.len(), 6);
    }
    next.signal(Signal::SIGTERM);
    next.wait_exit(Duration::from_secs(30)).await.expect("stops");
}

#[tokio::test]
async fn failures_end_failed_dead_or_retried_as_their_kind_says() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let crashing = app.enqueue_probe(admin.tenant_id, json!({ "steps": 1, "fault": "crash_worker" }), 2).await;

    // Workers keep dying on the crashing job; keep starting new ones, as a supervisor would.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut worker = app.start_worker(&["--queues", "system", "--concurrency", "4"]).await;
    let mut restarts = 0;
    while app.job(crashing).await.status != "dead" {
        assert!(tokio::time::Instant::now() < deadline, "never dead: {:?}", app.job(crashing).await);
        if let Ok(Some(_)) = worker.child.try_wait() {
            restarts += 1;
            worker = app.start_worker(&["--queues", "system", "--concurrency", "4"]).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dead = app.job(crashing).await;
    assert_eq!((dead.attempts, dead.max_attempts), (2, 2));
    assert!(dead.error.as_deref().is_some_and(|e| e.contains("stopped")), "{:?}", dead.error);
    assert!(restarts >= 2, "each attempt killed a worker ({restarts})");

    // With the crashing job out of the way (a crash kills whatever else runs beside it):
    let permanent = app.enqueue_probe(admin.tenant_id, json!({ "fault": "permanent" }), 3).await;
    let transient = app.enqueue_probe(admin.tenant_id, json!({ "steps": 1, "fault": "transient_once" }), 3).await;

    let failed = app.wait_job(permanent, Duration::from_secs(10), |job| job.status == "failed").await;
    assert_eq!(failed.attempts, 1, "a permanent failure is not retried");
    assert_eq!(failed.error.as_deref(), Some("the probe was asked to fail"));
    let retried = app.wait_job(transient, Duration::from_secs(30), |job| job.status == "succeeded").await;
    assert_eq!(retried.attempts, 2);
    assert_eq!(app.probe_steps(transient).await, [(1, 2)], "the failed first attempt wrote nothing");

    // Retry through the API: the dead job runs again with fresh attempts (and dies again, as it crashes).
    let reply = app.post(&format!("/api/v1/jobs/{permanent}/retry"), &admin, json!({})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let again = app
        .wait_job(permanent, Duration::from_secs(20), |job| {
            job.status == "failed" && job.attempts == 1 && job.finished_at > failed.finished_at
        })
        .await;
    assert_eq!(again.error.as_deref(), Some("the probe was asked to fail"));
    app.post(&format!("/api/v1/jobs/{transient}/retry"), &admin, json!({}))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    worker.signal(Signal::SIGTERM);
    worker.wait_exit(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn cancelled_jobs_never_run_or_stop_at_their_next_checkpoint() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let queued = app.enqueue_probe(admin.tenant_id, probe(3, 10), 3).await;
    let reply = app.post(&format!("/api/v1/jobs/{queued}/cancel"), &admin, json!({})).await;
    assert_eq!(reply.data()["status"], "cancelled", "{}", reply.body);

    let mut worker = app.start_worker(&["--queues", "system", "--concurrency", "2"]).await;
    let running = app.enqueue_probe(admin.tenant_id, probe(100, 100), 3).await;
    app.wait_job(running, Duration::from_secs(20), |job| job.progress_done >= 2).await;
    let reply = app.post(&format!("/api/v1/jobs/{running}/cancel"), &admin, json!({})).await;
    assert_eq!(reply.data()["status"], "running");
    assert!(reply.data()["cancel_requested_at"].is_string());
    let stopped = app.wait_job(running, Duration::from_secs(10), |job| job.status == "cancelled").await;
    assert!(stopped.progress_done < 100, "stopped early at {}", stopped.progress_done);
    assert_eq!(app.probe_steps(running).await.len() as i64, stopped.progress_done, "progress matches the effects");

    assert_eq!(app.job(queued).await.status, "cancelled");
    assert!(app.probe_steps(queued).await.is_empty(), "a cancelled queued job never ran");
    app.post(&format!("/api/v1/jobs/{queued}/cancel"), &admin, json!({}))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    worker.signal(Signal::SIGTERM);
    worker.wait_exit(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_hundred_thousand_jobs_drain_with_the_redis_backlog_bounded() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let total = 100_000usize;
    let tenant = crm_shared::TenantId(admin.tenant_id);
    let mut tx = crm_shared::db::begin_tenant(&app.db, tenant).await.expect("tx");
    let job = crm_shared::db::jobs::NewJob {
        kind: crm_shared::jobs::JobKind::Probe,
        payload: json!({}),
        max_attempts: 3,
        resource: None,
        created_by: None,
        request_id: None,
    };
    for _ in 0..(total / 10_000) {
        crm_shared::db::jobs::insert_many(&mut tx, tenant, &vec![job.clone(); 10_000]).await.expect("insert");
    }
    tx.commit().await.expect("commit");

    let mut workers = vec![
        app.start_worker(&["--queues", "system", "--concurrency", "32"]).await,
        app.start_worker(&["--queues", "system", "--concurrency", "32"]).await,
    ];
    let config = crm_shared::jobs::queue_config(&app.redis_prefix, crm_shared::jobs::Queue::System);
    let mut redis = app.redis().await;
    let mut largest_backlog = 0i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let backlog: i64 =
            redis::cmd("LLEN").arg(config.active_jobs_list()).query_async(&mut redis).await.expect("llen");
        largest_backlog = largest_backlog.max(backlog);
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status <> 'succeeded'")
            .fetch_one(&app.db)
            .await
            .expect("count");
        if left == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{left} jobs left");
        for worker in &mut workers {
            assert!(worker.child.try_wait().expect("wait").is_none(), "a worker died: {:?}", worker.output());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(largest_backlog <= crm_worker::dispatcher::MAX_REDIS_BACKLOG, "Redis backlog reached {largest_backlog}");
    let attempts: i64 = sqlx::query_scalar("SELECT sum(attempts) FROM jobs").fetch_one(&app.db).await.expect("sum");
    assert_eq!(attempts, total as i64, "each job ran once");
    // apalis' per-task bookkeeping is trimmed, so Redis memory does not grow with every job ever run.
    let mut left_in_redis = i64::MAX;
    for _ in 0..50 {
        let (data, done): (i64, i64) = redis::pipe()
            .hlen(config.job_data_hash())
            .scard(config.done_jobs_set())
            .query_async(&mut redis)
            .await
            .expect("sizes");
        left_in_redis = data + done;
        if left_in_redis == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(left_in_redis, 0, "finished tasks still held in Redis");
    for mut worker in workers {
        worker.signal(Signal::SIGTERM);
        worker.wait_exit(Duration::from_secs(30)).await;
    }
}

/// Issue 9, finding 5: probes up to 1000 steps × 60 s let one admin occupy the workers every tenant shares.
#[tokio::test]
async fn probes_are_bounded_and_refused_past_their_bounds_with_nothing_queued() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    for (body, field) in [
        (json!({ "steps": 101 }), "steps"),
        (json!({ "steps": 1, "step_ms": 5_001 }), "step_ms"),
        (json!({ "steps": 100, "step_ms": 601 }), "step_ms"),
    ] {
        let reply = app.post("/api/v1/admin/probes", &admin, body.clone()).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(reply.field_error(field).is_some_and(|m| m.contains("at most")), "{body}: {}", reply.body);
    }
    assert_eq!(app.count_rows("jobs", Some(admin.tenant_id)).await, 0, "nothing was queued");
    let longest = app.post("/api/v1/admin/probes", &admin, json!({ "steps": 100, "step_ms": 600 })).await;
    assert_eq!(longest.status, StatusCode::ACCEPTED, "{}", longest.body);
    let rep = app.user(&admin, "manager", &[]).await;
    app.post("/api/v1/admin/probes", &rep, json!({ "steps": 1 }))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
}
