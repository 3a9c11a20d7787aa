//! Schedules (contract §10) end to end: real `crm-scheduler` processes (two at once, one killed with SIGKILL,
//! one stopped and restarted), real workers, and a real SMTP server whose received messages are read back.

use chrono::{DateTime, Datelike, Duration as TimeDelta, DurationRound, Timelike, Utc};
use crm_tests::smtp::SmtpServer;
use crm_tests::{Session, TestApp, create_record, pdf_text};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

fn pipeline_schedule(name: &str, cron: &str, format: &str, recipients: &[Uuid], send_if_data: bool) -> Value {
    json!({ "name": name, "cron": cron, "time_zone": "Europe/Berlin", "recipients": recipients,
            "action": { "type": "report", "report": "pipeline", "format": format }, "send_if_data": send_if_data })
}

async fn create_schedule(app: &TestApp, session: &Session, body: Value) -> Value {
    let reply = app.post("/api/v1/schedules", session, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.data().clone()
}

/// Fires a schedule now and waits until its run has ended; returns the run.
async fn run_now(app: &TestApp, session: &Session, schedule: &str) -> Value {
    let reply = app.post(&format!("/api/v1/schedules/{schedule}/run"), session, json!({})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let job = reply.data()["job_id"].as_str().expect("job id").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let runs = app.get(&format!("/api/v1/schedules/{schedule}/runs"), session).await;
        let run =
            runs.data().as_array().and_then(|runs| runs.iter().find(|run| run["job_id"] == job.as_str())).cloned();
        if let Some(run) = run.filter(|run| run["finished_at"].is_string()) {
            return run;
        }
        assert!(tokio::time::Instant::now() < deadline, "the run did not end: {}", runs.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether some line of the PDF's text reads `section status count` (other columns may follow).
fn has_row(text: &str, section: &str, status: &str, count: i64) -> bool {
    text.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.len() >= 3 && words[0] == section && words[1] == status && words[2] == count.to_string()
    })
}

#[tokio::test]
async fn a_weekly_pipeline_report_reaches_a_manager_and_a_rep_as_their_own_pdf() {
    let app = TestApp::spawn().await;
    let smtp = SmtpServer::start().await;
    let admin = app.tenant().await;
    let team = app.team(&admin, "East").await;
    let manager = app.user(&admin, "manager", &[team]).await;
    let rep = app.user(&admin, "sales", &[team]).await;
    let outsider = app.user(&admin, "sales", &[]).await;
    for (session, leads) in [(&rep, 2), (&manager, 1), (&outsider, 3)] {
        for _ in 0..leads {
            create_record(&app, session, "leads").await;
        }
    }
    create_record(&app, &rep, "projects").await;
    let _worker = app.start_worker_with(&["--queues", "reports,emails"], &[("SMTP_URL", &smtp.url())]).await;

    let schedule = create_schedule(
        &app,
        &admin,
        pipeline_schedule("Weekly pipeline", "0 8 * * 1", "pdf", &[manager.user_id, rep.user_id], false),
    )
    .await;
    // Next Monday 08:00 in Berlin.
    let next: DateTime<Utc> = schedule["next_run_at"].as_str().expect("next_run_at").parse().expect("a time");
    let local = next.with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!((local.weekday(), local.hour(), local.minute()), (chrono::Weekday::Mon, 8, 0), "{schedule}");
    assert!(next > Utc::now() && next < Utc::now() + TimeDelta::days(8));

    let run = run_now(&app, &admin, schedule["id"].as_str().expect("id")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["emails_sent"], 2, "{run}");
    assert_eq!(run["trigger"], "manual");
    let messages = smtp.wait_for(2, Duration::from_secs(60)).await;
    assert_eq!(messages.len(), 2, "{messages:?}");

    let mut totals = Vec::new();
    for recipient in [&manager, &rep] {
        let message = messages.iter().find(|message| message.to.contains(&recipient.email)).expect("an email each");
        assert!(message.subject.contains("Weekly pipeline"), "{}", message.subject);
        assert_eq!(message.attachments.len(), 1, "one PDF");
        let (name, content_type, bytes) = &message.attachments[0];
        assert!(name.ends_with(".pdf") && content_type == "application/pdf", "{name} {content_type}");
        let text = pdf_text(bytes);
        let own = app.get("/api/v1/reports/pipeline", recipient).await;
        assert_eq!(own.status, StatusCode::OK);
        let mut total = 0;
        for row in own.data()["leads"].as_array().expect("leads") {
            let (status, count) = (row["status"].as_str().expect("status"), row["count"].as_i64().expect("count"));
            assert!(has_row(&text, "leads", status, count), "leads {status} {count} not in the PDF:\n{text}");
            total += count;
        }
        for row in own.data()["projects"].as_array().expect("projects") {
            let (status, count) = (row["status"].as_str().expect("status"), row["count"].as_i64().expect("count"));
            assert!(has_row(&text, "projects", status, count), "projects {status} {count} not in the PDF:\n{text}");
        }
        totals.push(total);
    }
    // Each saw their own: the manager their team's three leads, the rep their own two (not the outsider's).
    assert_eq!(totals, [3, 2]);
    let ids: HashSet<&str> = messages.iter().map(|message| message.message_id.as_str()).collect();
    assert_eq!(ids.len(), 2, "distinct Message-IDs");

    // The outbox: admins only.
    let outbox = app.get("/api/v1/emails?kind=scheduled_report", &admin).await;
    let sent = outbox.data().as_array().expect("emails");
    assert_eq!(sent.len(), 2);
    for email in sent {
        assert_eq!(email["status"], "sent", "{email}");
        let id = email["id"].as_str().expect("id");
        assert!(messages.iter().any(|message| message.message_id == format!("<{id}@localhost>")), "{id}");
    }
    app.get("/api/v1/emails", &manager).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    // The report files existed only to be attached: once sent, they are gone.
    let folder = std::env::temp_dir().join("crm-test-storage").join("schedules").join(admin.tenant_id.to_string());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while files_under(&folder) > 0 {
        assert!(tokio::time::Instant::now() < deadline, "report files left in {}", folder.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn files_under(folder: &std::path::Path) -> usize {
    std::fs::read_dir(folder).map_or(0, |entries| {
        entries.flatten().map(|entry| if entry.path().is_dir() { files_under(&entry.path()) } else { 1 }).sum()
    })
}

#[tokio::test]
async fn an_export_schedule_sends_each_recipient_their_own_rows_as_an_attachment() {
    let app = TestApp::spawn().await;
    let smtp = SmtpServer::start().await;
    let admin = app.tenant().await;
    let rep = app.user(&admin, "sales", &[]).await;
    let other = app.user(&admin, "sales", &[]).await;
    for (session, leads) in [(&rep, 2), (&other, 3)] {
        for _ in 0..leads {
            create_record(&app, session, "leads").await;
        }
    }
    let template = app
        .post(
            "/api/v1/export-templates",
            &admin,
            json!({ "name": "All leads", "entity": "leads", "format": "csv", "shared": true }),
        )
        .await;
    assert_eq!(template.status, StatusCode::CREATED, "{}", template.body);
    let _worker = app.start_worker_with(&["--queues", "reports,exports,emails"], &[("SMTP_URL", &smtp.url())]).await;
    let body = json!({ "name": "Leads to all", "cron": "0 7 * * *", "recipients": [admin.user_id, rep.user_id],
                       "action": { "type": "export", "template_id": template.id() } });
    let schedule = create_schedule(&app, &admin, body).await;
    assert_eq!(schedule["action"], json!({ "type": "export", "template_id": template.id() }));
    let run = run_now(&app, &admin, schedule["id"].as_str().expect("id")).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let messages = smtp.wait_for(2, Duration::from_secs(60)).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    for (session, rows) in [(&admin, 5), (&rep, 2)] {
        let message = messages.iter().find(|message| message.to.contains(&session.email)).expect("an email each");
        let (name, content_type, bytes) = &message.attachments[0];
        assert!(name.ends_with(".csv") && content_type.starts_with("text/csv"), "{name} {content_type}");
        let csv = String::from_utf8_lossy(bytes);
        assert_eq!(csv.lines().count(), rows + 1, "{} sees {rows} leads:\n{csv}", session.email);
    }
    // Counted on the run as the exports ended; no separate "export ready" notice went out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let schedule_id = schedule["id"].as_str().expect("id");
    loop {
        let runs = app.get(&format!("/api/v1/schedules/{schedule_id}/runs"), &admin).await;
        if runs.data()[0]["emails_sent"] == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", runs.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kinds: Vec<String> = app
        .get("/api/v1/emails", &admin)
        .await
        .data()
        .as_array()
        .expect("emails")
        .iter()
        .map(|email| email["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["scheduled_export", "scheduled_export"]);
}

#[tokio::test]
async fn send_if_data_sends_nothing_empty_and_a_deactivated_recipient_is_skipped() {
    let app = TestApp::spawn().await;
    let smtp = SmtpServer::start().await;
    let admin = app.tenant().await;
    let empty = app.user(&admin, "sales", &[]).await;
    let busy = app.user(&admin, "sales", &[]).await;
    let gone = app.user(&admin, "sales", &[]).await;
    create_record(&app, &busy, "leads").await;
    let reply = app.patch(&format!("/api/v1/users/{}", gone.user_id), &admin, json!({ "is_active": false })).await;
    assert_eq!(reply.status, StatusCode::OK);
    let _worker = app.start_worker_with(&["--queues", "reports,emails"], &[("SMTP_URL", &smtp.url())]).await;

    let quiet =
        create_schedule(&app, &admin, pipeline_schedule("Quiet", "0 8 * * *", "csv", &[empty.user_id], true)).await;
    let run = run_now(&app, &admin, quiet["id"].as_str().expect("id")).await;
    assert_eq!(run["status"], "skipped", "{run}");
    assert_eq!(run["emails_sent"], 0);
    assert!(run["skipped_reason"].as_str().is_some_and(|reason| reason.starts_with("no_data")), "{run}");
    assert_eq!(run["recipients"][0]["outcome"], "no_data");

    let mixed = create_schedule(
        &app,
        &admin,
        pipeline_schedule("Mixed", "0 8 * * *", "csv", &[busy.user_id, gone.user_id], false),
    )
    .await;
    let run = run_now(&app, &admin, mixed["id"].as_str().expect("id")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["emails_sent"], 1);
    let outcomes: Vec<(&str, &str)> = run["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|entry| (entry["user_id"].as_str().unwrap_or_default(), entry["outcome"].as_str().unwrap_or_default()))
        .collect();
    assert!(outcomes.contains(&(busy.user_id.to_string().as_str(), "emailed")), "{outcomes:?}");
    assert!(outcomes.contains(&(gone.user_id.to_string().as_str(), "skipped")), "{outcomes:?}");

    let messages = smtp.wait_for(1, Duration::from_secs(30)).await;
    // Nothing more arrives: the empty and the deactivated recipient get nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let messages_after = smtp.messages();
    assert_eq!((messages.len(), messages_after.len()), (1, 1), "{messages_after:?}");
    assert!(messages_after[0].to.contains(&busy.email));
    let csv = String::from_utf8_lossy(&messages_after[0].attachments[0].2).into_owned();
    assert!(csv.lines().any(|line| line.starts_with("leads,new,1")), "{csv}");
}

#[tokio::test]
async fn schedules_refuse_bad_input_other_tenants_users_and_roles_without_schedules() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let other_admin = app.tenant().await;
    let manager = app.user(&admin, "manager", &[]).await;
    let rep = app.user(&admin, "sales", &[]).await;
    let good = pipeline_schedule("Daily", "0 8 * * *", "pdf", &[rep.user_id], false);

    let reply = app.post("/api/v1/schedules", &rep, good.clone()).await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    for (field, value) in [
        ("cron", json!("0 8 * *")),
        ("cron", json!("61 8 * * *")),
        ("time_zone", json!("Mars/Olympus")),
        ("recipients", json!([other_admin.user_id])),
        ("recipients", json!([])),
        ("action.report", json!({ "type": "report", "report": "nope" })),
        ("action.format", json!({ "type": "report", "report": "pipeline", "format": "docx" })),
        (
            "action.params.start_date",
            json!({ "type": "report", "report": "pipeline", "params": { "start_date": "yesterday" } }),
        ),
        ("action.template_id", json!({ "type": "export", "template_id": Uuid::new_v4() })),
    ] {
        let key = if field.starts_with("action") { "action" } else { field };
        let mut body = good.clone();
        body[key] = value;
        let reply = app.post("/api/v1/schedules", &admin, body).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(reply.field_error(field).is_some(), "{field}: {}", reply.body);
    }
    assert_eq!(app.count_rows("schedules", None).await, 0, "nothing saved");

    let mine = create_schedule(&app, &manager, good.clone()).await;
    let admins = create_schedule(&app, &admin, good).await;
    let admins_id = admins["id"].as_str().expect("id");
    // A manager sees and runs only their own; another tenant sees none.
    app.get(&format!("/api/v1/schedules/{admins_id}"), &manager).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    let run = app.post(&format!("/api/v1/schedules/{admins_id}/run"), &manager, json!({})).await;
    run.assert_error(StatusCode::NOT_FOUND, "not_found");
    let listed = app.get("/api/v1/schedules", &manager).await;
    assert_eq!(listed.ids(), [mine["id"].as_str().expect("id").parse::<Uuid>().expect("uuid")]);
    app.get(&format!("/api/v1/schedules/{admins_id}"), &other_admin)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.delete(&format!("/api/v1/schedules/{admins_id}"), &other_admin)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    // Disabling clears next_run_at; enabling works it out again.
    let path = format!("/api/v1/schedules/{admins_id}");
    assert_eq!(app.patch(&path, &admin, json!({ "enabled": false })).await.data()["next_run_at"], Value::Null);
    assert!(app.patch(&path, &admin, json!({ "enabled": true })).await.data()["next_run_at"].is_string());
    assert_eq!(app.count_rows("schedule_runs", None).await, 0, "a refused run fired nothing");
}

/// The minute an instant falls in.
fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(1)).expect("truncate")
}

async fn runs_of(app: &TestApp, schedule: Uuid) -> Vec<(DateTime<Utc>, String, Option<String>)> {
    sqlx::query_as("SELECT scheduled_for, trigger, skipped_reason FROM schedule_runs WHERE schedule_id = $1 ORDER BY scheduled_for")
        .bind(schedule)
        .fetch_all(&app.db)
        .await
        .expect("runs")
}

/// Sleeps until `count` minute boundaries have passed since now, plus a few seconds for the tick.
async fn wait_minutes(count: i64) {
    let target = minute_of(Utc::now()) + TimeDelta::minutes(count) + TimeDelta::seconds(4);
    let wait = (target - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
}

#[tokio::test]
async fn two_schedulers_fire_every_minute_exactly_once_and_one_killed_leaves_the_other_firing() {
    let app = TestApp::spawn().await;
    let smtp = SmtpServer::start().await;
    let admin = app.tenant().await;
    create_record(&app, &admin, "leads").await;
    let _worker = app.start_worker_with(&["--queues", "reports,emails"], &[("SMTP_URL", &smtp.url())]).await;
    let schedule =
        create_schedule(&app, &admin, pipeline_schedule("Minutely", "* * * * *", "csv", &[admin.user_id], false)).await;
    let schedule_id: Uuid = schedule["id"].as_str().expect("id").parse().expect("uuid");
    let first: DateTime<Utc> = schedule["next_run_at"].as_str().expect("next").parse().expect("time");

    let first_scheduler = app.start_scheduler(&[]).await;
    let mut second_scheduler = app.start_scheduler(&[]).await;
    wait_minutes(3).await;
    first_scheduler.signal(nix::sys::signal::Signal::SIGKILL);
    drop(first_scheduler);
    wait_minutes(2).await;
    second_scheduler.signal(nix::sys::signal::Signal::SIGTERM);
    second_scheduler.wait_exit(Duration::from_secs(10)).await.expect("the scheduler stopped");
    let stopped = Utc::now();

    let runs = runs_of(&app, schedule_id).await;
    assert!(runs.len() >= 5, "{runs:?}");
    // Every minute from the first to the one before the stop fired, once, on time.
    let expected: Vec<DateTime<Utc>> =
        (0..).map(|n| first + TimeDelta::minutes(n)).take_while(|at| *at <= minute_of(stopped)).collect();
    let fired: Vec<DateTime<Utc>> = runs.iter().map(|(at, _, _)| *at).collect();
    assert!(fired == expected || fired[..] == expected[..expected.len() - 1], "fired {fired:?}\nexpected {expected:?}");
    assert!(runs.iter().all(|(_, trigger, reason)| trigger == "schedule" && reason.is_none()), "{runs:?}");

    // One email per run, each received once.
    let messages = smtp.wait_for(runs.len(), Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let messages = smtp.messages().len().max(messages.len());
    assert_eq!(messages, runs.len());
    let sent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM emails e JOIN schedule_runs r ON r.id = e.schedule_run_id WHERE r.schedule_id = $1 AND e.status = 'sent'",
    )
    .bind(schedule_id)
    .fetch_one(&app.db)
    .await
    .expect("count");
    assert_eq!(sent, runs.len() as i64);
    println!(
        "two schedulers, one killed: {} minutes fired, each once ({} to {}); {sent} emails sent, {messages} received",
        runs.len(),
        fired[0],
        fired[fired.len() - 1]
    );
}

#[tokio::test]
async fn a_scheduler_stopped_for_ten_minutes_fires_the_missed_minute_once_as_catch_up() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let schedule =
        create_schedule(&app, &admin, pipeline_schedule("Minutely", "* * * * *", "csv", &[admin.user_id], false)).await;
    let schedule_id: Uuid = schedule["id"].as_str().expect("id").parse().expect("uuid");
    let scheduler = app.start_scheduler(&[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(70);
    while runs_of(&app, schedule_id).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the first minute did not fire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    scheduler.signal(nix::sys::signal::Signal::SIGKILL);
    drop(scheduler);
    // Ten minutes pass with no scheduler: everything the scheduler wrote moves ten minutes into the past, which
    // is what the database holds after ten real minutes (the test does not wait them out).
    sqlx::query("UPDATE schedules SET next_run_at = next_run_at - interval '10 minutes' WHERE id = $1")
        .bind(schedule_id)
        .execute(&app.db)
        .await
        .expect("rewind");
    sqlx::query(
        "UPDATE schedule_runs SET scheduled_for = scheduled_for - interval '10 minutes', \
         fired_at = fired_at - interval '10 minutes' WHERE schedule_id = $1",
    )
    .bind(schedule_id)
    .execute(&app.db)
    .await
    .expect("rewind runs");

    let _scheduler = app.start_scheduler(&[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let runs = loop {
        let runs = runs_of(&app, schedule_id).await;
        if runs.len() >= 2 {
            break runs;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing fired on restart: {runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now_minute = minute_of(Utc::now());
    let after = runs_of(&app, schedule_id).await;
    // Unless the clock crossed a minute meanwhile (then that minute fires too, on time), exactly one more.
    let catch_up: Vec<_> = after.iter().filter(|(_, trigger, _)| trigger == "catch_up").collect();
    assert_eq!(catch_up.len(), 1, "{after:?}");
    let (at, _, reason) = catch_up[0];
    assert!(reason.as_deref().is_some_and(|reason| reason.starts_with("catch_up")), "{reason:?}");
    assert!(*at == now_minute || *at == now_minute - TimeDelta::minutes(1), "fired for the latest missed minute: {at}");
    assert!(after.len() <= runs.len() + 1 && after.len() <= 3, "{after:?}");
    // And the schedule carries on normally at the next minute.
    wait_minutes(1).await;
    let later = runs_of(&app, schedule_id).await;
    let last = later.last().expect("a run");
    assert_eq!((last.1.as_str(), last.0), ("schedule", minute_of(Utc::now())), "{later:?}");
}
