//! Email (contract §10) against a real SMTP server: notifications reach the right person once, an SMTP outage
//! delays but never loses or doubles an email, and without SMTP_URL emails are held until a worker has it.
//! Also the built-in clean-up schedules.

use crm_tests::smtp::{Received, SmtpServer};
use crm_tests::{Session, TestApp, create_record};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

async fn outbox(app: &TestApp, admin: &Session) -> Vec<Value> {
    let reply = app.get("/api/v1/emails", admin).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.data().as_array().expect("emails").clone()
}

/// Waits until the outbox holds an email of `kind` that `done` accepts.
async fn wait_email(app: &TestApp, admin: &Session, kind: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let emails = outbox(app, admin).await;
        if let Some(email) = emails.iter().find(|email| email["kind"] == kind && done(email)) {
            return email.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no {kind} email got there: {emails:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn to<'a>(messages: &'a [Received], session: &Session) -> Vec<&'a Received> {
    messages.iter().filter(|message| message.to.contains(&session.email)).collect()
}

async fn new_ticket(app: &TestApp, session: &Session, assignee: Option<Uuid>) -> Uuid {
    let reply = app
        .post(
            "/api/v1/tickets",
            session,
            json!({ "subject": "Printer jams", "priority": "high", "assigned_to_user_id": assignee }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.id()
}

#[tokio::test]
async fn notifications_reach_the_right_person_exactly_once() {
    let app = TestApp::spawn().await;
    let smtp = SmtpServer::start().await;
    let admin = app.tenant().await;
    let rep = app.user(&admin, "sales", &[]).await;
    let agent = app.user(&admin, "support", &[]).await;
    let second_agent = app.user(&admin, "support", &[]).await;
    let _worker = app.start_worker_with(&["--queues", "imports,exports,emails"], &[("SMTP_URL", &smtp.url())]).await;

    // An import with a bad row: its importer hears how it ended, with the link to the errors.
    let csv = b"first_name,email\nAda,ada@example.com\nBob,not-an-email\n".to_vec();
    let upload = app.upload(&rep, "leads.csv", csv, &[("entity", "leads")]).await;
    let import = app.wait_import(&rep, upload.id(), Duration::from_secs(60)).await;
    assert_eq!(import["status"], "completed_with_errors", "{import}");
    // An export: its requester gets the link, and the link downloads without signing in.
    let export = app.post("/api/v1/exports", &rep, json!({ "entity": "leads", "format": "csv" })).await;
    assert_eq!(export.status, StatusCode::ACCEPTED, "{}", export.body);
    // A ticket assigned to an agent, then to another, then answered by the second agent.
    let ticket = new_ticket(&app, &admin, Some(agent.user_id)).await;
    let path = format!("/api/v1/tickets/{ticket}");
    assert_eq!(
        app.patch(&path, &admin, json!({ "assigned_to_user_id": second_agent.user_id })).await.status,
        StatusCode::OK
    );
    assert_eq!(app.patch(&path, &admin, json!({ "priority": "low" })).await.status, StatusCode::OK, "no new assignee");
    let reply = app.post(&format!("{path}/replies"), &second_agent, json!({ "body": "Fixed the roller." })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    let messages = smtp.wait_for(5, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let messages = if smtp.messages().len() > messages.len() { smtp.messages() } else { messages };
    assert_eq!(messages.len(), 5, "{:#?}", messages.iter().map(|m| (&m.to, &m.subject)).collect::<Vec<_>>());
    let rep_mail = to(&messages, &rep);
    assert_eq!(rep_mail.len(), 2, "import and export");
    let import_mail = rep_mail.iter().find(|message| message.subject.contains("leads.csv")).expect("import email");
    assert!(import_mail.subject.contains("finished with errors"), "{}", import_mail.subject);
    assert!(
        import_mail.text.contains("Rows with errors: 1") && import_mail.text.contains("/errors.csv"),
        "{}",
        import_mail.text
    );
    let export_mail =
        rep_mail.iter().find(|message| message.subject.contains("export is ready")).expect("export email");
    let link = export_mail
        .text
        .split_whitespace()
        .find(|word| word.contains("/download?expires="))
        .expect("a download link")
        .to_owned();
    let path_and_query = &link[link.find("/api/").expect("an API path")..];
    let download = app.client.get(format!("{}{path_and_query}", app.address)).send().await.expect("download");
    assert_eq!(download.status(), StatusCode::OK);
    assert!(download.text().await.expect("body").contains("ada@example.com"));
    let agent_mail = to(&messages, &agent);
    assert_eq!(agent_mail.len(), 1);
    assert!(agent_mail[0].subject.starts_with("New ticket for you"), "{}", agent_mail[0].subject);
    let second_mail = to(&messages, &second_agent);
    assert_eq!(second_mail.len(), 1, "assigned once; the priority change sent nothing");
    assert!(second_mail[0].subject.starts_with("Ticket assigned to you"));
    let admin_mail = to(&messages, &admin);
    assert_eq!(admin_mail.len(), 1, "the reply goes to the creator, not its author");
    assert!(admin_mail[0].text.contains("Fixed the roller."));
    let ids: HashSet<&str> = messages.iter().map(|message| message.message_id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    for email in outbox(&app, &admin).await {
        assert_eq!((email["status"].as_str(), email["attempts"].as_i64()), (Some("sent"), Some(1)), "{email}");
    }
}

#[tokio::test]
async fn an_smtp_outage_is_retried_until_sent_once_and_without_smtp_emails_are_held() {
    let app = TestApp::spawn().await;
    let mut smtp = SmtpServer::start().await;
    let admin = app.tenant().await;
    let agent = app.user(&admin, "support", &[]).await;
    smtp.stop().await;
    let worker = app.start_worker_with(&["--queues", "emails"], &[("SMTP_URL", &smtp.url())]).await;
    new_ticket(&app, &admin, Some(agent.user_id)).await;
    let failing = wait_email(&app, &admin, "ticket_created", |email| email["attempts"].as_i64() >= Some(2)).await;
    assert_eq!(failing["status"], "queued", "retried, not given up: {failing}");
    assert!(failing["error"].as_str().is_some_and(|error| error.starts_with("SMTP")), "{failing}");
    assert!(smtp.messages().is_empty());
    smtp.resume().await;
    let sent = wait_email(&app, &admin, "ticket_created", |email| email["status"] == "sent").await;
    let messages = smtp.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((messages.len(), smtp.messages().len()), (1, 1), "sent once");
    assert_eq!(messages[0].message_id, format!("<{}@localhost>", sent["id"].as_str().expect("id")));
    drop(worker);

    // No SMTP_URL: held, with the reason; a worker that has it sends it.
    let unconfigured = app.start_worker(&["--queues", "emails"]).await;
    let second = new_ticket(&app, &admin, Some(agent.user_id)).await;
    let held = wait_email(&app, &admin, "ticket_created", |email| email["status"] == "held").await;
    assert!(held["error"].as_str().is_some_and(|error| error.contains("SMTP_URL")), "{held}");
    assert_eq!(smtp.messages().len(), 1);
    drop(unconfigured);
    let _sender = app.start_worker_with(&["--queues", "emails"], &[("SMTP_URL", &smtp.url())]).await;
    let released =
        wait_email(&app, &admin, "ticket_created", |email| email["id"] == held["id"] && email["status"] == "sent")
            .await;
    let messages = smtp.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((messages.len(), smtp.messages().len()), (2, 2), "each email once");
    assert!(
        messages
            .iter()
            .any(|message| message.message_id == format!("<{}@localhost>", released["id"].as_str().expect("id")))
    );
    let emails: i64 = sqlx::query_scalar("SELECT count(*) FROM emails").fetch_one(&app.db).await.expect("count");
    assert_eq!(emails, 2, "one email per ticket ({second})");
}

#[tokio::test]
async fn built_in_schedules_delete_old_closed_tickets_and_prune_old_jobs() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let rep = app.user(&admin, "sales", &[]).await;
    let mut tickets = Vec::new();
    for age in [91, 89] {
        let ticket = create_record(&app, &admin, "tickets").await;
        let path = format!("/api/v1/tickets/{ticket}");
        assert_eq!(app.patch(&path, &admin, json!({ "status": "closed" })).await.status, StatusCode::OK);
        assert_eq!(
            app.post(&format!("{path}/replies"), &admin, json!({ "body": "done" })).await.status,
            StatusCode::CREATED
        );
        sqlx::query("UPDATE tickets SET closed_at = now() - make_interval(days => $2) WHERE id = $1")
            .bind(ticket)
            .bind(age)
            .execute(&app.db)
            .await
            .expect("age the ticket");
        tickets.push(ticket);
    }
    let open_old = create_record(&app, &admin, "tickets").await;
    sqlx::query("UPDATE tickets SET created_at = now() - interval '400 days' WHERE id = $1")
        .bind(open_old)
        .execute(&app.db)
        .await
        .expect("age");

    // Finished jobs: one 31 days old, one recent.
    let _worker = app.start_worker(&["--queues", "system"]).await;
    let old = app.enqueue_probe(admin.tenant_id, json!({}), 1).await;
    let recent = app.enqueue_probe(admin.tenant_id, json!({}), 1).await;
    for job in [old, recent] {
        app.wait_job(job, Duration::from_secs(30), |job| job.status == "succeeded").await;
    }
    sqlx::query("UPDATE jobs SET finished_at = now() - interval '31 days' WHERE id = $1")
        .bind(old)
        .execute(&app.db)
        .await
        .expect("age the job");

    let listed = app.get("/api/v1/admin/system-schedules", &admin).await;
    let names: Vec<&str> = listed.data().as_array().expect("list").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["rollups", "metric-refresh", "ticket-cleanup", "file-expiry", "job-pruning"]);
    assert!(listed.data().as_array().expect("list").iter().all(|schedule| schedule["next_run_at"].is_string()));
    app.get("/api/v1/admin/system-schedules", &rep).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let refused = app.post("/api/v1/admin/system-schedules/job-pruning/run", &rep, json!({})).await;
    refused.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let unknown = app.post("/api/v1/admin/system-schedules/nope/run", &admin, json!({})).await;
    unknown.assert_error(StatusCode::NOT_FOUND, "not_found");

    // Run now, for this tenant, through the API and a worker.
    let started = app.post("/api/v1/admin/system-schedules/job-pruning/run", &admin, json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let job = app.wait_job(started.id(), Duration::from_secs(30), |job| job.status == "succeeded").await;
    assert_eq!(job.result.as_ref().and_then(|result| result["jobs_deleted"].as_i64()), Some(1), "{job:?}");
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM jobs WHERE id = ANY($1)")
        .bind(vec![old, recent])
        .fetch_all(&app.db)
        .await
        .expect("jobs");
    assert_eq!(left, [recent], "the old job went, the recent one stayed");

    // The scheduler fires each built-in schedule's latest time when it starts: ticket clean-up runs.
    let _scheduler = app.start_scheduler(&[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE id = $1")
            .bind(tickets[0])
            .fetch_one(&app.db)
            .await
            .expect("count");
        if count == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the 91-day-old closed ticket was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kept: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM tickets WHERE id = ANY($1) ORDER BY id")
        .bind(vec![tickets[0], tickets[1], open_old])
        .fetch_all(&app.db)
        .await
        .expect("tickets");
    assert_eq!(kept, [tickets[1], open_old], "89 days closed and open tickets stay");
    let replies: Vec<Uuid> =
        sqlx::query_scalar("SELECT ticket_id FROM ticket_replies").fetch_all(&app.db).await.expect("replies");
    assert_eq!(replies, [tickets[1]], "replies went with their ticket");
    let audited: Value =
        sqlx::query_scalar("SELECT details FROM audit_log WHERE tenant_id = $1 AND action = 'tickets.cleaned_up'")
            .bind(admin.tenant_id)
            .fetch_one(&app.db)
            .await
            .expect("an audit entry");
    assert_eq!(audited["deleted"], 1);
    assert_eq!(audited["retention_days"], 90);
    let listed = app.get("/api/v1/admin/system-schedules", &admin).await;
    let cleanup = listed.data().as_array().expect("list").iter().find(|s| s["name"] == "ticket-cleanup").cloned();
    assert!(cleanup.is_some_and(|cleanup| cleanup["last_scheduled_for"].is_string()));
}
