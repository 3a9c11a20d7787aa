//! Exports of clients, projects, interactions and tickets (issue 10, acceptance 1): for an admin, a manager and
//! a sales rep, each format holds exactly the rows and values the caller's own list returns, references written as
//! people read them (a client's name, a lead's full name, a user's email), never as ids.

use crm_tests::{Session, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

const TIMESTAMPS: [&str; 6] = ["created_at", "contact_date", "follow_up_at", "completed_at", "closed_at", "updated_at"];

/// Names by id, for the references an export writes out.
#[derive(Default)]
struct Names {
    users: HashMap<String, String>,
    clients: HashMap<String, String>,
    leads: HashMap<String, String>,
}

async fn list_all(app: &TestApp, session: &Session, entity: &str, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    loop {
        let path = format!("/api/v1/{entity}?{query}&limit=100&offset={}", items.len());
        let reply = app.get(&path, session).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let page = reply.body["items"].as_array().cloned().unwrap_or_default();
        let done = page.len() < 100;
        items.extend(page);
        if done {
            return items;
        }
    }
}

fn expected(record: &Value, column: &str, names: &Names) -> String {
    let lookup = |field: &str, map: &HashMap<String, String>| {
        record[field].as_str().and_then(|id| map.get(id).cloned()).unwrap_or_default()
    };
    match column {
        "assigned_to" => lookup("assigned_to_user_id", &names.users),
        "user" => lookup("user_id", &names.users),
        "client" => lookup("client_id", &names.clients),
        "lead" => lookup("lead_id", &names.leads),
        column if TIMESTAMPS.contains(&column) => record[column]
            .as_str()
            .map(|at| {
                chrono::DateTime::parse_from_rfc3339(at)
                    .expect("timestamp")
                    .with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            })
            .unwrap_or_default(),
        column => match &record[column] {
            Value::Null => String::new(),
            Value::String(text) => text.clone(),
            other => other.to_string(),
        },
    }
}

async fn run_export(app: &TestApp, session: &Session, body: Value) -> Vec<u8> {
    let reply = app.post("/api/v1/exports", session, body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let id = reply.id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reply = app.get(&format!("/api/v1/exports/{id}"), session).await;
        match reply.data()["status"].as_str() {
            Some("completed") => break,
            Some("queued" | "running") => {}
            other => panic!("export ended {other:?}: {}", reply.body),
        }
        assert!(tokio::time::Instant::now() < deadline, "export {id} did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = app
        .client
        .get(format!("{}/api/v1/exports/{id}/download", app.address))
        .bearer_auth(&session.token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.expect("bytes").to_vec()
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(bytes.strip_prefix("\u{feff}".as_bytes()).expect("BOM")).expect("utf-8");
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
    reader
        .records()
        .map(|record| {
            record
                .expect("record")
                .iter()
                .map(|cell| crm_shared::csv_safety::strip_formula_guard(cell).to_owned())
                .collect()
        })
        .collect()
}

fn xlsx_rows(bytes: &[u8]) -> Vec<Vec<calamine::Data>> {
    let path = std::env::temp_dir().join(format!("export-{}.xlsx", Uuid::new_v4()));
    std::fs::write(&path, bytes).expect("write");
    let mut workbook: calamine::Xlsx<_> = calamine::open_workbook(&path).expect("xlsx");
    let range = calamine::Reader::worksheet_range_at(&mut workbook, 0).expect("a sheet").expect("range");
    let _ = std::fs::remove_file(&path);
    range.rows().map(<[calamine::Data]>::to_vec).collect()
}

async fn seed(app: &TestApp, admin: &Session, rep: &Session) -> Names {
    let mut names = Names::default();
    for session in [admin, rep] {
        names.users.insert(session.user_id.to_string(), session.email.clone());
        for n in 0..3 {
            let client = app
                .post("/api/v1/clients", session, json!({ "name": format!("Société {n} 株式会社"), "industry": "Retail", "status": "active", "assigned_to_user_id": session.user_id }))
                .await;
            assert_eq!(client.status, StatusCode::CREATED, "{}", client.body);
            let client_id = client.id().to_string();
            names.clients.insert(client_id.clone(), client.data()["name"].as_str().expect("name").to_owned());
            let project = app
                .post("/api/v1/projects", session, json!({ "client_id": client_id, "name": format!("=Relaunch {n}"), "value": format!("{}.5", 1000 * (n + 1)), "start_date": "2026-01-15", "status": "pending" }))
                .await;
            assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
            let lead = app
                .post("/api/v1/leads", session, json!({ "first_name": "Ada", "last_name": format!("Lovelace {n}") }))
                .await;
            assert_eq!(lead.status, StatusCode::CREATED, "{}", lead.body);
            names.leads.insert(lead.id().to_string(), format!("Ada Lovelace {n}"));
            let interaction = app
                .post("/api/v1/interactions", session, json!({ "type": "call", "contact_date": "2026-11-01T10:00:00Z", "lead_id": lead.id(), "client_id": client_id, "notes": "+1 call back", "follow_up_at": "2026-11-08T09:30:00+01:00" }))
                .await;
            assert_eq!(interaction.status, StatusCode::CREATED, "{}", interaction.body);
            let ticket = app
                .post("/api/v1/tickets", session, json!({ "subject": format!("Broken export {n}"), "description": "@everyone it fails", "priority": "high", "queue": "billing", "assigned_to_user_id": session.user_id }))
                .await;
            assert_eq!(ticket.status, StatusCode::CREATED, "{}", ticket.body);
        }
    }
    names
}

#[tokio::test]
async fn clients_projects_interactions_and_tickets_export_what_their_lists_show() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let team = app.team(&admin, "North").await;
    let manager = app.user(&admin, "manager", &[team]).await;
    let rep = app.user(&admin, "sales", &[team]).await;
    let loner = app.user(&admin, "sales", &[]).await;
    let mut names = seed(&app, &admin, &rep).await;
    let more = seed(&app, &loner, &manager).await;
    names.users.extend(more.users);
    names.clients.extend(more.clients);
    names.leads.extend(more.leads);
    let _worker = app.start_worker(&["--queues", "exports"]).await;
    for entity in ["clients", "projects", "interactions", "tickets"] {
        let columns: Vec<&str> = match entity {
            "clients" => vec!["name", "email", "phone", "status", "industry", "assigned_to", "created_at"],
            "projects" => {
                vec!["client", "name", "status", "value", "start_date", "close_date", "assigned_to", "created_at"]
            }
            "interactions" => {
                vec!["type", "contact_date", "lead", "client", "user", "notes", "follow_up_at", "completed_at"]
            }
            _ => vec![
                "subject",
                "description",
                "category",
                "priority",
                "status",
                "queue",
                "assigned_to",
                "closed_at",
                "created_at",
            ],
        };
        for session in [&admin, &manager, &rep] {
            let listed = list_all(&app, session, entity, "sort=created_at").await;
            assert!(!listed.is_empty(), "{entity}");
            let want: Vec<Vec<String>> =
                listed.iter().map(|record| columns.iter().map(|c| expected(record, c, &names)).collect()).collect();
            let body = json!({ "entity": entity, "format": "csv", "columns": columns, "sort": "created_at" });
            let rows = csv_rows(&run_export(&app, session, body).await);
            assert_eq!(rows[0], columns, "{entity} header");
            assert_eq!(rows[1..].to_vec(), want, "{entity} CSV for {}", session.email);

            let body = json!({ "entity": entity, "format": "xlsx", "columns": columns, "sort": "created_at" });
            let cells = xlsx_rows(&run_export(&app, session, body).await);
            assert_eq!(cells.len() - 1, want.len(), "{entity} XLSX rows");
            for (row, wanted) in cells[1..].iter().zip(&want) {
                for (index, column) in columns.iter().enumerate() {
                    match &row[index] {
                        calamine::Data::String(text) => assert_eq!(text, &wanted[index], "{entity}.{column}"),
                        calamine::Data::Empty => assert_eq!(wanted[index], "", "{entity}.{column}"),
                        calamine::Data::Float(number) => {
                            assert_eq!(format!("{number:.2}"), wanted[index], "{entity}.{column} is a number")
                        }
                        calamine::Data::DateTime(_) => {
                            assert!(!wanted[index].is_empty(), "{entity}.{column} is a date cell with a value")
                        }
                        other => panic!("{entity}.{column}: {other:?}"),
                    }
                }
            }

            let body = json!({ "entity": entity, "format": "pdf", "columns": &columns[..3], "sort": "created_at" });
            let pdf = run_export(&app, session, body).await;
            let path = std::env::temp_dir().join(format!("export-{}.pdf", Uuid::new_v4()));
            std::fs::write(&path, &pdf).expect("write");
            let output =
                std::process::Command::new("pdftotext").arg("-layout").arg(&path).arg("-").output().expect("pdftotext");
            let _ = std::fs::remove_file(&path);
            let text = String::from_utf8_lossy(&output.stdout);
            // Three columns leave each cell room for its whole text: every cell of every row is in the PDF's text,
            // and each row's cells in order on one line.
            let lines: Vec<&str> = text.lines().collect();
            for wanted in &want {
                let cells: Vec<&str> = wanted[..3].iter().map(String::as_str).filter(|cell| !cell.is_empty()).collect();
                assert!(
                    lines.iter().any(|line| {
                        let mut rest = *line;
                        cells.iter().all(|cell| match rest.find(cell) {
                            Some(at) => {
                                rest = &rest[at + cell.len()..];
                                true
                            }
                            None => false,
                        })
                    }),
                    "{entity}: the row {cells:?} in the PDF:\n{text}"
                );
            }
        }
    }
}
