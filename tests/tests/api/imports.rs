//! Imports end to end: real uploads through the API, a real crm-worker process, real Postgres and Redis.

use crm_tests::{Process, Session, TestApp, peak_memory_bytes};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use uuid::Uuid;

const HEADER: [&str; 10] = [
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "Company",
    "Lead Source",
    "Status",
    "Notes",
    "Assigned To",
    "Created At",
];

/// One valid row, one row per fault kind, one more valid row. Row numbers count the header as row 1.
fn fault_rows(owner: &str) -> Vec<Vec<String>> {
    let long_company = "x".repeat(300);
    let rows: Vec<Vec<&str>> = vec![
        vec![
            "Zoë",
            "Müller",
            "zoe@example.com",
            "(415) 555-2671",
            "Acme, Inc.",
            "website",
            "qualified",
            "likes café",
            owner,
            "2024-03-31 09:30",
        ],
        vec!["", "Nofirst", "nofirst@example.com", "", "", "", "", "", "", ""],
        vec!["Ed", "Bad", "ed(at)example", "", "", "", "", "", "", ""],
        vec!["Pat", "Phone", "pat@example.com", "12", "", "", "", "", "", ""],
        vec!["Stan", "Status", "stan@example.com", "", "", "", "hot", "", "", ""],
        vec!["Dee", "Date", "dee@example.com", "", "", "", "", "", "", "31st of March"],
        vec!["Lon", "Long", "lon@example.com", "", &long_company, "", "", "", "", ""],
        vec!["Zed", "Copy", "ZOE@example.com", "", "", "", "", "", "", ""],
        vec!["Exa", "Existing", "existing@example.com", "", "", "", "", "", "", ""],
        vec!["Una", "Owner", "una@example.com", "", "", "", "", "", "nobody@nowhere.test", ""],
        vec!["Mal", "Formed", "mal@example.com", "", "", "", "", "", "", "", "an extra cell"],
        vec!["Bob", "Builder", "bob@example.com", "+44 20 7946 0958", "", "Cold Call", "", "", "", ""],
    ];
    rows.into_iter().map(|row| row.into_iter().map(str::to_owned).collect()).collect()
}

fn expected_errors() -> Vec<(i64, &'static str, &'static str, Option<&'static str>)> {
    vec![
        (3, "validation", "missing_required", Some("first_name")),
        (4, "validation", "invalid_email", Some("email")),
        (5, "validation", "invalid_phone", Some("phone")),
        (6, "validation", "invalid_enum", Some("status")),
        (7, "validation", "invalid_date", Some("created_at")),
        (8, "validation", "value_too_long", Some("company")),
        (9, "duplicate", "duplicate_in_file", Some("email")),
        (10, "duplicate", "duplicate_existing", Some("email")),
        (11, "reference_not_found", "unknown_user", Some("assigned_to")),
        (12, "validation", "malformed_row", None),
    ]
}

fn csv_text(rows: &[Vec<String>], delimiter: u8, terminator: csv::Terminator) -> String {
    let mut writer =
        csv::WriterBuilder::new().delimiter(delimiter).terminator(terminator).flexible(true).from_writer(Vec::new());
    writer.write_record(HEADER).expect("header");
    for row in rows {
        writer.write_record(row).expect("row");
    }
    String::from_utf8(writer.into_inner().expect("csv")).expect("utf-8")
}

fn utf16(text: &str, little_endian: bool, bom: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let units = if bom { vec![0xFEFF] } else { vec![] }.into_iter().chain(text.encode_utf16());
    for unit in units {
        bytes.extend(if little_endian { unit.to_le_bytes() } else { unit.to_be_bytes() });
    }
    bytes
}

fn xlsx(rows: &[Vec<String>]) -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (column, name) in HEADER.iter().enumerate() {
        sheet.write_string(0, column as u16, *name).expect("header cell");
    }
    for (index, row) in rows.iter().enumerate() {
        for (column, cell) in row.iter().enumerate() {
            if !cell.is_empty() {
                sheet.write_string(index as u32 + 1, column as u16, cell).expect("cell");
            }
        }
    }
    workbook.save_to_buffer().expect("xlsx")
}

/// A tenant with a sales rep (the owner column names them) and one existing lead.
async fn import_tenant(app: &TestApp) -> (Session, Session) {
    let admin = app.tenant().await;
    let rep = app.user(&admin, "sales", &[]).await;
    let existing = app
        .post(
            "/api/v1/leads",
            &admin,
            json!({"first_name": "Existing", "email": "existing@example.com", "company": "OldCo"}),
        )
        .await;
    assert_eq!(existing.status, StatusCode::CREATED, "{}", existing.body);
    (admin, rep)
}

/// What an import did, free of ids: counts, errors and the leads it wrote.
async fn outcome(app: &TestApp, admin: &Session, id: Uuid) -> Value {
    let import = app.wait_import(admin, id, Duration::from_secs(60)).await;
    let errors: Vec<Value> = app
        .import_errors(admin, id)
        .await
        .into_iter()
        .map(|e| json!([e["row_number"], e["error_type"], e["code"], e["field"]]))
        .collect();
    let leads: Vec<(
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
        bool,
        String,
    )> = sqlx::query_as(
        "SELECT first_name, last_name, email, phone, company, lead_source, status, notes, \
                    assigned_to_user_id IS NOT NULL, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') \
             FROM leads WHERE tenant_id = $1 AND email <> 'existing@example.com' ORDER BY email",
    )
    .bind(admin.tenant_id)
    .fetch_all(&app.db)
    .await
    .expect("leads");
    json!({
        "status": import["status"], "total_rows": import["total_rows"], "processed_rows": import["processed_rows"],
        "created": import["created"], "updated": import["updated"], "skipped": import["skipped"],
        "failed": import["failed"], "errors": errors,
        "leads": leads.iter().map(|l| json!([l.0, l.1, l.2, l.3, l.4, l.5, l.6, l.7, l.8, l.9])).collect::<Vec<_>>(),
    })
}

async fn import_file(app: &TestApp, admin: &Session, name: &str, bytes: Vec<u8>, fields: &[(&str, &str)]) -> Uuid {
    let reply = app.upload(admin, name, bytes, fields).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{name}: {}", reply.body);
    assert!(reply.headers.get("location").is_some());
    reply.id()
}

#[tokio::test]
async fn every_fault_is_reported_alike_in_every_encoding_delimiter_line_end_and_xlsx() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;

    let (admin, rep) = import_tenant(&app).await;
    let rows = fault_rows(&rep.email);
    let baseline_text = csv_text(&rows, b',', csv::Terminator::Any(b'\n'));
    let id = import_file(&app, &admin, "leads.csv", baseline_text.clone().into_bytes(), &[("entity", "leads")]).await;
    let baseline = outcome(&app, &admin, id).await;

    // The exact expectation, once.
    let expected: Vec<Value> =
        expected_errors().into_iter().map(|(row, kind, code, field)| json!([row, kind, code, field])).collect();
    assert_eq!(baseline["errors"], json!(expected), "{baseline}");
    assert_eq!(
        (&baseline["status"], &baseline["total_rows"], &baseline["created"], &baseline["failed"]),
        (&json!("completed_with_errors"), &json!(12), &json!(2), &json!(10)),
        "{baseline}"
    );
    let leads = baseline["leads"].as_array().expect("leads");
    assert_eq!(leads.len(), 2, "{baseline}");
    assert_eq!(
        leads[1],
        json!([
            "Zoë",
            "Müller",
            "zoe@example.com",
            "+14155552671",
            "Acme, Inc.",
            "Website",
            "qualified",
            "likes café",
            true,
            "2024-03-31 09:30"
        ])
    );
    assert_eq!(leads[0][3], "+442079460958");
    assert_eq!(leads[0][5], "Cold Call");
    assert_eq!(leads[0][6], "new", "a blank status is new");
    let first_error = &app.import_errors(&admin, id).await[1];
    assert_eq!(first_error["row_data"]["Email"], "ed(at)example", "the row as it was: {first_error}");
    assert!(first_error["message"].as_str().is_some_and(|m| m.contains("ed(at)example")), "{first_error}");
    // Nothing was written twice: one lead per email, the existing one untouched.
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 3);

    for name in VARIANTS {
        // Each variant in a tenant of its own, so duplicates against the database read the same.
        let (admin, rep) = import_tenant(&app).await;
        let (file_name, bytes) = variant(name, &rep.email);
        let id = import_file(&app, &admin, file_name, bytes, &[("entity", "leads")]).await;
        let result = outcome(&app, &admin, id).await;
        assert_eq!(result, baseline, "{name} differs from the UTF-8, comma, LF file");
    }
}

const VARIANTS: [&str; 10] = [
    "UTF-8 with BOM",
    "UTF-16LE with BOM",
    "UTF-16BE without BOM",
    "Windows-1252",
    "semicolon",
    "tab",
    "pipe",
    "CRLF",
    "CR",
    "XLSX",
];

/// The fault file, for a tenant whose sales rep is `owner`, written the way `name` says.
fn variant(name: &str, owner: &str) -> (&'static str, Vec<u8>) {
    let rows = fault_rows(owner);
    let comma = csv_text(&rows, b',', csv::Terminator::Any(b'\n'));
    let bytes = match name {
        "UTF-8 with BOM" => [b"\xEF\xBB\xBF".as_slice(), comma.as_bytes()].concat(),
        "UTF-16LE with BOM" => utf16(&comma, true, true),
        "UTF-16BE without BOM" => utf16(&comma, false, false),
        "Windows-1252" => encoding_rs::WINDOWS_1252.encode(&comma).0.into_owned(),
        "semicolon" => csv_text(&rows, b';', csv::Terminator::Any(b'\n')).into_bytes(),
        "tab" => csv_text(&rows, b'\t', csv::Terminator::Any(b'\n')).into_bytes(),
        "pipe" => csv_text(&rows, b'|', csv::Terminator::Any(b'\n')).into_bytes(),
        "CRLF" => csv_text(&rows, b',', csv::Terminator::CRLF).into_bytes(),
        "CR" => csv_text(&rows, b',', csv::Terminator::Any(b'\r')).into_bytes(),
        "XLSX" => return ("leads.xlsx", xlsx(&rows)),
        other => panic!("unknown variant {other}"),
    };
    ("leads.csv", bytes)
}
