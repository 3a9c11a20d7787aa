//! Exports (issue 10) with a real worker: what each format holds is exactly what the requester's own list
//! returns (cell by cell: CSV parsed, XLSX read back with calamine, PDF through pdftotext), for an admin, a
//! manager and a sales rep; an exported leads file imports back to the same leads; download links.

use crm_tests::{PASSWORD, Process, Session, TestApp, pdf_text};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

struct Team {
    admin: Session,
    manager: Session,
    rep: Session,
    other_rep: Session,
    emails: HashMap<Uuid, String>,
}

/// A tenant with a manager and a rep in one team and a rep in another, and leads owned by each: names with
/// accents and CJK, notes a spreadsheet would run as formulas, phones, sources and statuses.
async fn team_with_leads(app: &TestApp) -> Team {
    let admin = app.tenant().await;
    let east = app.team(&admin, "East").await;
    let west = app.team(&admin, "West").await;
    let manager = app.user(&admin, "manager", &[east]).await;
    let rep = app.user(&admin, "sales", &[east]).await;
    let other_rep = app.user(&admin, "sales", &[west]).await;
    let names = ["Zoë", "José", "北京", "Łukasz", "Ana", "Björn"];
    let notes = ["=1+2", "+cmd", "-5 days", "@SUM(A1)", "plain, with \"quotes\"\nand a line", "東京都渋谷区"];
    for (index, owner) in [&admin, &manager, &rep, &other_rep, &rep, &manager].into_iter().enumerate() {
        for copy in 0..3 {
            let source = ["Website", "Cold Call", "Referral"][copy];
            let status = ["new", "contacted", "qualified"][index % 3];
            let company = if copy == 1 { Value::Null } else { json!("Ångström AB") };
            let reply = app
                .post(
                    "/api/v1/leads",
                    &admin,
                    json!({
                        "first_name": names[index],
                        "last_name": format!("Müller {copy}"),
                        "email": format!("lead-{index}-{copy}-{}@example.com", Uuid::new_v4().simple()),
                        "phone": "(415) 555-2671",
                        "company": company,
                        "lead_source": source,
                        "status": status,
                        "notes": notes[index],
                        "assigned_to_user_id": owner.user_id,
                    }),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        }
    }
    let emails = [&admin, &manager, &rep, &other_rep].iter().map(|s| (s.user_id, s.email.clone())).collect();
    Team { admin, manager, rep, other_rep, emails }
}

async fn worker(app: &TestApp) -> Process {
    app.start_worker(&["--queues", "imports,exports"]).await
}

/// Every page of the caller's list.
async fn whole_list(app: &TestApp, session: &Session, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    loop {
        let reply = app.get(&format!("/api/v1/leads?{query}&limit=100&offset={}", items.len()), session).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let page = reply.body["items"].as_array().cloned().unwrap_or_default();
        let done = page.len() < 100;
        items.extend(page);
        if done {
            return items;
        }
    }
}

async fn export(app: &TestApp, session: &Session, body: Value) -> Value {
    let reply = app.post("/api/v1/exports", session, body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert!(reply.headers.contains_key("location"));
    let id = reply.id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reply = app.get(&format!("/api/v1/exports/{id}"), session).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let status = reply.data()["status"].as_str().unwrap_or_default().to_owned();
        if !matches!(status.as_str(), "queued" | "running") {
            assert_eq!(status, "completed", "{}", reply.body);
            return reply.data().clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "export {id} did not end: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn download(app: &TestApp, session: &Session, export: &Value) -> Vec<u8> {
    let response = app
        .client
        .get(format!("{}/api/v1/exports/{}/download", app.address, export["id"].as_str().expect("id")))
        .bearer_auth(&session.token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    let disposition = response.headers()["content-disposition"].to_str().expect("disposition").to_owned();
    assert!(disposition.starts_with("attachment; filename=\"") && disposition.contains("filename*=UTF-8''"));
    let length: usize = response.headers()["content-length"].to_str().expect("length").parse().expect("number");
    let bytes = response.bytes().await.expect("bytes").to_vec();
    assert_eq!(bytes.len(), length);
    bytes
}

const COLUMNS: [&str; 10] = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "lead_source",
    "status",
    "created_at",
    "assigned_to",
    "notes",
];

/// What each default column of a listed lead must read as, in text (`created_at` in the tenant's zone, UTC).
fn expected_rows(leads: &[Value], emails: &HashMap<Uuid, String>) -> Vec<Vec<String>> {
    leads
        .iter()
        .map(|lead| {
            COLUMNS
                .iter()
                .map(|column| match *column {
                    "assigned_to" => lead["assigned_to_user_id"]
                        .as_str()
                        .and_then(|id| Uuid::parse_str(id).ok())
                        .and_then(|id| emails.get(&id).cloned())
                        .unwrap_or_default(),
                    "created_at" => {
                        let at = chrono::DateTime::parse_from_rfc3339(lead["created_at"].as_str().expect("created_at"))
                            .expect("timestamp");
                        at.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
                    }
                    other => lead[other].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .collect()
}

fn csv_rows(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    assert!(bytes.starts_with("\u{feff}".as_bytes()), "a BOM first");
    let text = std::str::from_utf8(&bytes[3..]).expect("utf-8");
    assert!(text.contains("\r\n"), "CRLF line ends");
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    let header = reader.headers().expect("header").iter().map(str::to_owned).collect();
    let rows = reader
        .records()
        .map(|record| {
            record
                .expect("record")
                .iter()
                .map(|cell| crm_shared::csv_safety::strip_formula_guard(cell).to_owned())
                .collect()
        })
        .collect();
    (header, rows)
}

#[tokio::test]
async fn each_format_holds_exactly_what_each_roles_list_shows() {
    let app = TestApp::spawn().await;
    let team = team_with_leads(&app).await;
    let _worker = worker(&app).await;
    let filters = json!({ "status": "new,contacted" });
    for session in [&team.admin, &team.manager, &team.rep] {
        let listed = whole_list(&app, session, "status=new,contacted&sort=first_name").await;
        assert!(!listed.is_empty());
        let expected = expected_rows(&listed, &team.emails);

        let csv = export(
            &app,
            session,
            json!({ "entity": "leads", "format": "csv", "filters": filters, "sort": "first_name" }),
        )
        .await;
        assert_eq!(csv["row_count"], listed.len());
        let (header, rows) = csv_rows(&download(&app, session, &csv).await);
        assert_eq!(header, COLUMNS);
        assert_eq!(rows, expected, "CSV for {}", session.email);

        let xlsx = export(
            &app,
            session,
            json!({ "entity": "leads", "format": "xlsx", "filters": filters, "sort": "first_name" }),
        )
        .await;
        let bytes = download(&app, session, &xlsx).await;
        // No exported cell is a formula: the sheet has no <f> element, whatever the text starts with.
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).expect("zip");
        let mut sheet = String::new();
        std::io::Read::read_to_string(&mut archive.by_name("xl/worksheets/sheet1.xml").expect("sheet"), &mut sheet)
            .expect("xml");
        assert!(!sheet.contains("<f>") && !sheet.contains("<f "), "a formula cell in the export");
        let path = std::env::temp_dir().join(format!("export-{}.xlsx", Uuid::new_v4()));
        std::fs::write(&path, &bytes).expect("write");
        let mut workbook: calamine::Xlsx<_> = calamine::open_workbook(&path).expect("xlsx");
        let range = calamine::Reader::worksheet_range_at(&mut workbook, 0).expect("a sheet").expect("range");
        let _ = std::fs::remove_file(&path);
        let cells: Vec<Vec<calamine::Data>> = range.rows().map(<[calamine::Data]>::to_vec).collect();
        let header: Vec<String> = cells[0].iter().map(ToString::to_string).collect();
        assert_eq!(header, COLUMNS);
        assert_eq!(cells.len() - 1, expected.len());
        for (row, want) in cells[1..].iter().zip(&expected) {
            for (index, column) in COLUMNS.iter().enumerate() {
                let cell = &row[index];
                if *column == "created_at" {
                    assert!(matches!(cell, calamine::Data::DateTime(_)), "created_at is a date cell: {cell:?}");
                    continue;
                }
                let text = match cell {
                    calamine::Data::Empty => String::new(),
                    calamine::Data::String(text) => text.clone(),
                    other => panic!("{column} is not text: {other:?}"),
                };
                assert_eq!(&text, &want[index], "XLSX {column} for {}", session.email);
            }
        }

        let pdf = export(&app, session, json!({ "entity": "leads", "format": "pdf", "filters": filters, "sort": "first_name", "columns": ["first_name", "email", "status"] })).await;
        let text = pdf_text(&download(&app, session, &pdf).await);
        assert!(text.contains("Page 1 of"), "{text}");
        // Every listed lead is a line of the PDF with its three cells in order.
        for lead in &listed {
            let cells = [&lead["first_name"], &lead["email"], &lead["status"]]
                .map(|v| v.as_str().unwrap_or_default().to_owned());
            let found = text.lines().any(|line| {
                let mut rest = line;
                cells.iter().all(|cell| match rest.find(cell.as_str()) {
                    Some(at) => {
                        rest = &rest[at + cell.len()..];
                        true
                    }
                    None => false,
                })
            });
            assert!(found, "the PDF has the row {cells:?}: {text}");
        }
    }
    // Accented and CJK text render (and extract) in a PDF.
    let every = export(
        &app,
        &team.admin,
        json!({ "entity": "leads", "format": "pdf", "columns": ["first_name", "last_name", "notes"] }),
    )
    .await;
    let text = pdf_text(&download(&app, &team.admin, &every).await);
    for needle in ["北京", "東京都渋谷区", "Zoë", "Łukasz", "Björn", "Müller 2", "=1+2"] {
        assert!(text.contains(needle), "{needle} in the PDF: {text}");
    }
    // The rep's export holds none of the other team's leads.
    let others = whole_list(&app, &team.other_rep, "sort=first_name").await;
    let mine = export(&app, &team.rep, json!({ "entity": "leads", "format": "csv" })).await;
    let (_, rows) = csv_rows(&download(&app, &team.rep, &mine).await);
    for lead in others {
        let email = lead["email"].as_str().expect("email");
        assert!(!rows.iter().any(|row| row[2] == email), "{email} is not the rep's");
    }
}

#[tokio::test]
async fn an_exported_leads_file_imports_back_to_the_same_leads() {
    let app = TestApp::spawn().await;
    let team = team_with_leads(&app).await;
    let _worker = worker(&app).await;
    let by_email = |mut leads: Vec<Value>| {
        leads.sort_by(|a, b| a["email"].as_str().cmp(&b["email"].as_str()));
        leads
    };
    let original = by_email(whole_list(&app, &team.admin, "sort=first_name").await);
    for format in ["csv", "xlsx"] {
        let done = export(&app, &team.admin, json!({ "entity": "leads", "format": format })).await;
        let bytes = download(&app, &team.admin, &done).await;
        // An empty tenant whose users have the same emails (emails are unique per tenant).
        let fresh = app.tenant().await;
        let mut emails = HashMap::new();
        for session in [&team.admin, &team.manager, &team.rep, &team.other_rep] {
            let reply = app
                .post(
                    "/api/v1/users",
                    &fresh,
                    json!({ "email": session.email, "name": "Same", "password": PASSWORD, "role": "sales" }),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
            emails.insert(session.email.clone(), reply.id());
        }
        let upload = app.upload(&fresh, &format!("leads.{format}"), bytes, &[("entity", "leads")]).await;
        assert_eq!(upload.status, StatusCode::ACCEPTED, "{}", upload.body);
        let import = app.wait_import(&fresh, upload.id(), Duration::from_secs(60)).await;
        assert_eq!(import["status"], "completed", "{format}: {import}");
        assert_eq!(import["created"], original.len(), "{format}");
        let imported = by_email(whole_list(&app, &fresh, "sort=first_name").await);
        assert_eq!(imported.len(), original.len());
        for (was, now) in original.iter().zip(&imported) {
            for field in ["first_name", "last_name", "email", "phone", "company", "lead_source", "status", "notes"] {
                assert_eq!(was[field], now[field], "{format} {field}");
            }
            let owner =
                |lead: &Value, map: &dyn Fn(&str) -> Option<String>| lead["assigned_to_user_id"].as_str().and_then(map);
            let was_owner = owner(was, &|id| team.emails.get(&Uuid::parse_str(id).ok()?).cloned());
            let now_owner = owner(now, &|id| emails.iter().find(|(_, v)| v.to_string() == id).map(|(k, _)| k.clone()));
            assert_eq!(was_owner, now_owner, "{format} owner");
            let instant = |lead: &Value| {
                chrono::DateTime::parse_from_rfc3339(lead["created_at"].as_str().expect("at")).expect("ts").timestamp()
            };
            assert_eq!(instant(was), instant(now), "{format} created_at (to the second)");
        }
        assert!(imported.iter().any(|lead| lead["notes"] == "=1+2"), "formula-like text comes back as the text");
    }
}

#[tokio::test]
async fn links_roles_and_limits_answer_as_the_contract_says() {
    let database_url = crm_tests::fresh_database().await;
    let app = TestApp::spawn_configured(database_url, crm_tests::redis_url(), &[("PDF_MAX_ROWS", "5")]).await;
    let team = team_with_leads(&app).await;
    let _worker = worker(&app).await;
    let done =
        export(&app, &team.rep, json!({ "entity": "leads", "format": "csv", "file_name": "Pipeline Ü Q1" })).await;
    let url = done["download_url"].as_str().expect("download_url").to_owned();
    let anonymous = reqwest::get(format!("{}{url}", app.address)).await.expect("download");
    assert_eq!(anonymous.status(), StatusCode::OK, "the signed link needs no token");
    let disposition = anonymous.headers()["content-disposition"].to_str().expect("header").to_owned();
    assert!(disposition.contains("filename=\"Pipeline___Q1.csv\"") && disposition.contains("%C3%9C"), "{disposition}");
    let changed = url.replace("signature=", "signature=00");
    let forged = reqwest::get(format!("{}{changed}", app.address)).await.expect("download");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let later = url.replacen("expires=", "expires=9", 1);
    assert_eq!(
        reqwest::get(format!("{}{later}", app.address)).await.expect("download").status(),
        StatusCode::FORBIDDEN
    );

    // Past its expiry the link (and the file) are gone: 410.
    sqlx::query("UPDATE exports SET expires_at = now() - interval '1 minute' WHERE id = $1")
        .bind(Uuid::parse_str(done["id"].as_str().expect("id")).expect("uuid"))
        .execute(&app.db)
        .await
        .expect("expire");
    let expired_url = app.get(&format!("/api/v1/exports/{}", done["id"].as_str().expect("id")), &team.rep).await.data()
        ["download_url"]
        .as_str()
        .expect("url")
        .to_owned();
    let expired = TestApp::read(reqwest::get(format!("{}{expired_url}", app.address)).await.expect("download")).await;
    expired.assert_error(StatusCode::GONE, "export_expired");

    let other_tenant = app.tenant().await;
    app.get(&format!("/api/v1/exports/{}", done["id"].as_str().expect("id")), &other_tenant)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("/api/v1/exports/{}", done["id"].as_str().expect("id")), &team.other_rep)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let readonly = app.user(&team.admin, "readonly", &[]).await;
    app.post("/api/v1/exports", &readonly, json!({ "entity": "leads", "format": "csv" }))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");

    let before = app.count_rows("exports", Some(team.admin.tenant_id)).await;
    let too_many = app.post("/api/v1/exports", &team.admin, json!({ "entity": "leads", "format": "pdf" })).await;
    too_many.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "too_many_rows");
    assert!(
        too_many.body["error"].as_str().is_some_and(|e| e.contains("CSV") && e.contains("XLSX")),
        "{}",
        too_many.body
    );
    let unknown = app
        .post("/api/v1/exports", &team.admin, json!({ "entity": "leads", "format": "csv", "columns": ["email", "password_hash"], "filters": { "colour": "red" } }))
        .await;
    unknown.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(
        unknown.field_error("columns").is_some_and(|m| m.contains("password_hash") && m.contains("first_name")),
        "{}",
        unknown.body
    );
    assert!(
        unknown.field_error("filters").is_some_and(|m| m.contains("colour") && m.contains("status")),
        "{}",
        unknown.body
    );
    assert_eq!(app.count_rows("exports", Some(team.admin.tenant_id)).await, before, "refused requests wrote nothing");

    let history = app.get("/api/v1/exports", &team.rep).await;
    assert_eq!(history.body["items"].as_array().map(Vec::len), Some(1), "{}", history.body);
    let all = app.get("/api/v1/exports?include_total=true", &team.admin).await;
    assert_eq!(all.body["total"], 1);
    let downloads: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'export_downloaded'")
            .bind(team.admin.tenant_id)
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(downloads, 1, "the signed download is in the audit log");
}

#[tokio::test]
async fn templates_are_validated_when_saved_and_run_with_the_runners_visibility() {
    let app = TestApp::spawn().await;
    let team = team_with_leads(&app).await;
    let _worker = worker(&app).await;
    let body = json!({ "name": "New leads", "entity": "leads", "format": "csv", "filters": { "status": "new" }, "sort": "first_name", "shared": true });
    let created = app.post("/api/v1/export-templates", &team.admin, body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let template = created.id();
    app.post("/api/v1/export-templates", &team.admin, body).await.assert_error(StatusCode::CONFLICT, "conflict");

    let before = app.count_rows("export_templates", Some(team.admin.tenant_id)).await;
    let bad = app
        .post("/api/v1/export-templates", &team.rep, json!({ "name": "Bad", "entity": "leads", "format": "csv", "columns": ["secret"], "filters": { "status": "won" } }))
        .await;
    bad.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(bad.field_error("columns").is_some() && bad.field_error("status").is_some(), "{}", bad.body);
    assert_eq!(app.count_rows("export_templates", Some(team.admin.tenant_id)).await, before, "nothing saved");

    // The rep sees and runs the shared template, and gets only their own new leads.
    let listed = app.get("/api/v1/export-templates", &team.rep).await;
    assert_eq!(listed.data().as_array().map(Vec::len), Some(1), "{}", listed.body);
    let run = app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/export-templates/{template}/run"),
            Some(&team.rep.token),
            None,
        )
        .await;
    assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.body);
    assert_eq!(run.data()["template_id"], template.to_string());
    let id = run.id();
    let done = loop {
        let reply = app.get(&format!("/api/v1/exports/{id}"), &team.rep).await;
        if reply.data()["status"] == "completed" {
            break reply.data().clone();
        }
        assert!(matches!(reply.data()["status"].as_str(), Some("queued" | "running")), "{}", reply.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (_, rows) = csv_rows(&download(&app, &team.rep, &done).await);
    let expected = expected_rows(&whole_list(&app, &team.rep, "status=new&sort=first_name").await, &team.emails);
    assert_eq!(rows, expected);

    // Others run it but may not change it; a private template is its creator's alone.
    let path = format!("/api/v1/export-templates/{template}");
    let change = json!({ "name": "Mine now", "entity": "leads", "format": "xlsx" });
    app.patch(&path, &team.rep, change.clone()).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.delete(&path, &team.rep).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let changed = app.patch(&path, &team.admin, change).await;
    assert_eq!((changed.status, &changed.data()["format"]), (StatusCode::OK, &json!("xlsx")), "{}", changed.body);
    let private = app
        .post("/api/v1/export-templates", &team.rep, json!({ "name": "Mine", "entity": "tickets", "format": "pdf" }))
        .await;
    assert_eq!(private.status, StatusCode::CREATED, "{}", private.body);
    app.get(&format!("/api/v1/export-templates/{}", private.id()), &team.other_rep)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let readonly = app.user(&team.admin, "readonly", &[]).await;
    app.get("/api/v1/export-templates", &readonly).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(app.delete(&path, &team.admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/v1/exports/{id}"), &team.rep).await.data()["template_id"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn a_cancelled_export_never_runs_and_has_nothing_to_download() {
    let app = TestApp::spawn().await;
    let team = team_with_leads(&app).await;
    let reply = app.post("/api/v1/exports", &team.rep, json!({ "entity": "leads", "format": "xlsx" })).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let id = reply.id();
    app.post(&format!("/api/v1/exports/{id}/cancel"), &team.other_rep, json!({}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let cancelled = app.post(&format!("/api/v1/exports/{id}/cancel"), &team.rep, json!({})).await;
    assert_eq!(
        (cancelled.status, &cancelled.data()["status"]),
        (StatusCode::OK, &json!("cancelled")),
        "{}",
        cancelled.body
    );
    app.post(&format!("/api/v1/exports/{id}/cancel"), &team.rep, json!({}))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    let _worker = worker(&app).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let view = app.get(&format!("/api/v1/exports/{id}"), &team.rep).await;
    assert_eq!(view.data()["status"], "cancelled", "{}", view.body);
    assert_eq!(view.data()["download_url"], Value::Null);
    app.get(&format!("/api/v1/exports/{id}/download"), &team.rep)
        .await
        .assert_error(StatusCode::CONFLICT, "export_not_ready");
    let stored: Option<String> = sqlx::query_scalar("SELECT storage_key FROM exports WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("export");
    assert_eq!(stored, None, "no file was made");
}
