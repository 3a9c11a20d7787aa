//! Imports end to end: real uploads through the API, a real crm-worker process, real Postgres and Redis.

use crm_shared::imports::reader::FileFormat;
use crm_tests::{
    Process, Session, TestApp, import_file, import_tenant, peak_memory_bytes, utf16, valid_leads_csv, wait_processed,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;
use uuid::Uuid;

pub(crate) const HEADER: [&str; 10] = [
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
        vec![
            "Bob",
            "Builder",
            "bob@example.com",
            "+44 20 7946 0958",
            "",
            "Cold Call",
            "",
            "",
            "",
            "2024-04-01T08:00:00+02:00",
        ],
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

/// What an import did, free of ids: counts, errors and the leads it wrote.
async fn outcome(app: &TestApp, admin: &Session, id: Uuid) -> Value {
    let import = app.wait_import(admin, id, Duration::from_secs(60)).await;
    let errors: Vec<Value> = app
        .import_errors(admin, id)
        .await
        .into_iter()
        .map(|e| json!([e["row_number"], e["error_type"], e["code"], e["field"]]))
        .collect();
    let leads: Vec<Value> = sqlx::query_scalar(
        "SELECT json_build_array(first_name, last_name, email, phone, company, lead_source, status, notes, \
                assigned_to_user_id IS NOT NULL, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')) \
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
        "leads": leads,
    })
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
    // Every row gives created_at, so the comparison of variants never depends on the clock.
    assert_eq!(leads[0][9], "2024-04-01 06:00", "an explicit offset wins over the tenant's time zone");
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

async fn count_leads(app: &TestApp, tenant: Uuid) -> i64 {
    app.count_rows("leads", Some(tenant)).await
}

#[tokio::test]
async fn dry_run_writes_nothing_upsert_updates_skip_skips_and_retry_applies_corrections() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;

    // Dry run: the same verdicts as a real run, duplicates against the database included, and no record.
    let (admin, rep) = import_tenant(&app).await;
    let text = csv_text(&fault_rows(&rep.email), b',', csv::Terminator::Any(b'\n'));
    let id =
        import_file(&app, &admin, "leads.csv", text.clone().into_bytes(), &[("entity", "leads"), ("dry_run", "true")])
            .await;
    let dry = outcome(&app, &admin, id).await;
    assert_eq!((&dry["created"], &dry["failed"]), (&json!(2), &json!(10)), "{dry}");
    assert!(dry["errors"].as_array().is_some_and(|e| e.contains(&json!([
        10,
        "duplicate",
        "duplicate_existing",
        "email"
    ]))));
    assert_eq!(dry["leads"], json!([]), "a dry run writes no record");
    assert_eq!(count_leads(&app, admin.tenant_id).await, 1);
    let detail = app.get(&format!("/api/v1/imports/{id}"), &admin).await;
    assert_eq!(detail.data()["dry_run"], true);

    // Upsert: the lead with that email (any case) is updated; blank cells keep what is stored.
    let upsert =
        b"first_name,email,phone,company\nExisting Two,EXISTING@example.com,(415) 555-2671,\nNew,new@example.com,,\n";
    let id = import_file(&app, &admin, "upsert.csv", upsert.to_vec(), &[("entity", "leads"), ("mode", "upsert")]).await;
    let done = app.wait_import(&admin, id, Duration::from_secs(30)).await;
    assert_eq!(
        (&done["status"], &done["created"], &done["updated"], &done["failed"]),
        (&json!("completed"), &json!(1), &json!(1), &json!(0)),
        "{done}"
    );
    let (first_name, phone, company): (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT first_name, phone, company FROM leads WHERE tenant_id = $1 AND lower(email) = 'existing@example.com'",
    )
    .bind(admin.tenant_id)
    .fetch_one(&app.db)
    .await
    .expect("existing lead");
    assert_eq!(
        (first_name.as_str(), phone.as_deref(), company.as_deref()),
        ("Existing Two", Some("+14155552671"), Some("OldCo"))
    );
    assert_eq!(count_leads(&app, admin.tenant_id).await, 2);

    // Skip: duplicates are counted and left alone.
    let skip = b"first_name,email\nChanged,existing@example.com\nAnother,another@example.com\n";
    let id = import_file(&app, &admin, "skip.csv", skip.to_vec(), &[("entity", "leads"), ("mode", "skip")]).await;
    let done = app.wait_import(&admin, id, Duration::from_secs(30)).await;
    assert_eq!(
        (&done["status"], &done["created"], &done["skipped"], &done["failed"]),
        (&json!("completed"), &json!(1), &json!(1), &json!(0)),
        "{done}"
    );
    let unchanged: String = sqlx::query_scalar(
        "SELECT first_name FROM leads WHERE tenant_id = $1 AND lower(email) = 'existing@example.com'",
    )
    .bind(admin.tenant_id)
    .fetch_one(&app.db)
    .await
    .expect("lead");
    assert_eq!(unchanged, "Existing Two");

    // Retry: correct one failed row, retry, and only that row is imported; its error is resolved.
    let (admin, rep) = import_tenant(&app).await;
    let text = csv_text(&fault_rows(&rep.email), b',', csv::Terminator::Any(b'\n'));
    let id = import_file(&app, &admin, "leads.csv", text.into_bytes(), &[("entity", "leads")]).await;
    app.wait_import(&admin, id, Duration::from_secs(30)).await;
    let errors = app.import_errors(&admin, id).await;
    let bad_email = errors.iter().find(|e| e["code"] == "invalid_email").expect("invalid_email error");
    let error_id = bad_email["id"].as_str().expect("id");
    // A correction naming no column of the file is refused, and nothing changes.
    let refused =
        app.patch(&format!("/api/v1/import-errors/{error_id}"), &admin, json!({"corrected_data": {"Fax": "1"}})).await;
    refused.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fixed = app
        .patch(
            &format!("/api/v1/import-errors/{error_id}"),
            &admin,
            json!({"corrected_data": {"Email": "ed@example.com"}}),
        )
        .await;
    assert_eq!(fixed.status, StatusCode::OK, "{}", fixed.body);
    assert_eq!(fixed.data()["corrected_data"], json!({"Email": "ed@example.com"}));
    let retry = app.post(&format!("/api/v1/imports/{id}/retry"), &admin, json!({})).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{}", retry.body);
    let done = app.wait_import(&admin, id, Duration::from_secs(30)).await;
    assert_eq!(
        (&done["status"], &done["attempt"], &done["created"], &done["failed"]),
        (&json!("completed_with_errors"), &json!(2), &json!(3), &json!(9)),
        "{done}"
    );
    let after = app.import_errors(&admin, id).await;
    assert_eq!(after.len(), 10, "each failed row keeps one error");
    let resolved: Vec<&Value> = after.iter().filter(|e| !e["resolved_at"].is_null()).collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["row_number"], 4);
    let malformed = after.iter().find(|e| e["code"] == "malformed_row").expect("malformed row");
    assert_eq!(malformed["row_data"]["column 11"], "an extra cell", "the extra cell is kept: {malformed}");
    assert!(
        after.iter().filter(|e| e["resolved_at"].is_null()).all(|e| e["attempt"] == 2),
        "the rest were tried again"
    );
    let ed: i64 = sqlx::query_scalar("SELECT count(*) FROM leads WHERE tenant_id = $1 AND email = 'ed@example.com'")
        .bind(admin.tenant_id)
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(ed, 1);
    assert_eq!(count_leads(&app, admin.tenant_id).await, 4, "existing + 2 from the file + the corrected row");
    let unresolved = app.get(&format!("/api/v1/imports/{id}/errors?resolved=false&include_total=true"), &admin).await;
    assert_eq!(unresolved.body["total"], 9);
    let duplicates = app.get(&format!("/api/v1/imports/{id}/errors?error_type=duplicate"), &admin).await;
    assert_eq!(duplicates.body["items"].as_array().map(Vec::len), Some(2));

    // errors.csv: the unresolved rows as they were, with why in front, ready to fix and upload again.
    let text = app.errors_csv(&admin, id).await;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader.headers().expect("headers").iter().map(str::to_owned).collect();
    assert_eq!(&headers[..6], ["row_number", "error_type", "code", "field", "message", "First Name"]);
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), 9);
    assert_eq!((&records[0][0], &records[0][2], &records[0][5]), ("3", "missing_required", ""));
    assert_eq!((&records[1][0], &records[1][2], &records[1][7]), ("5", "invalid_phone", "pat@example.com"));

    // A retry with nothing left to run, or of a running import, is a conflict.
    let import_audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action IN ('import_started', 'import_retried')",
    )
    .bind(admin.tenant_id)
    .fetch_one(&app.db)
    .await
    .expect("audit");
    assert_eq!(import_audit, 2, "who imported what is in the audit log");
}

#[tokio::test]
async fn cancel_stops_at_the_next_batch_and_keeps_what_was_written() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;
    let id = import_file(&app, &admin, "big.csv", valid_leads_csv(200_000, "cancel"), &[("entity", "leads")]).await;
    wait_processed(&app, id, 5_000, Duration::from_secs(60)).await;
    let cancel = app.post(&format!("/api/v1/imports/{id}/cancel"), &admin, json!({})).await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.body);
    let done = app.wait_import(&admin, id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    let processed = done["processed_rows"].as_i64().expect("processed");
    assert!(processed < 200_000 && processed % 5_000 == 0, "stopped at a batch boundary: {done}");
    assert_eq!(done["created"].as_i64(), Some(processed));
    assert_eq!(count_leads(&app, admin.tenant_id).await, processed, "every committed batch, nothing more");
    let again = app.post(&format!("/api/v1/imports/{id}/cancel"), &admin, json!({})).await;
    again.assert_error(StatusCode::CONFLICT, "conflict");
    let retry = app.post(&format!("/api/v1/imports/{id}/retry"), &admin, json!({})).await;
    retry.assert_error(StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn a_worker_killed_mid_import_is_replaced_and_every_row_is_written_exactly_once() {
    let app = TestApp::spawn().await;
    let mut first = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;
    const ROWS: i64 = 300_000;
    let id = import_file(&app, &admin, "big.csv", valid_leads_csv(ROWS as usize, "kill"), &[("entity", "leads")]).await;
    let processed_at_kill = wait_processed(&app, id, 30_000, Duration::from_secs(120)).await;
    first.signal(nix::sys::signal::Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(10)).await.expect("the worker died");
    let killed_at = app.get(&format!("/api/v1/imports/{id}"), &admin).await;
    assert!(killed_at.data()["processed_rows"].as_i64().unwrap_or(0) < ROWS, "killed mid-file: {}", killed_at.body);

    let _second = app.start_worker(&["--queues", "imports"]).await;
    let done = app.wait_import(&admin, id, Duration::from_secs(240)).await;
    assert_eq!(
        (&done["status"], &done["created"], &done["failed"], &done["processed_rows"]),
        (&json!("completed"), &json!(ROWS), &json!(0), &json!(ROWS)),
        "{done}"
    );
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT lower(email)) FROM leads WHERE tenant_id = $1")
            .bind(admin.tenant_id)
            .fetch_one(&app.db)
            .await
            .expect("counts");
    assert_eq!((rows, distinct), (ROWS, ROWS), "every row once (killed after {processed_at_kill} rows)");
    let job_id = Uuid::parse_str(done["job_id"].as_str().expect("job id")).expect("uuid");
    assert_eq!(app.job(job_id).await.attempts, 2, "the second worker ran it once more");
}

/// The corpus beside the project: real files other projects collected to break parsers.
fn corpus_files() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora");
    let mut files = Vec::new();
    for folder in std::fs::read_dir(&root).unwrap_or_else(|_| panic!("{} is missing", root.display())) {
        let folder = folder.expect("entry").path();
        if folder.is_dir() {
            for file in std::fs::read_dir(&folder).expect("folder") {
                files.push(file.expect("file").path());
            }
        }
    }
    files.sort();
    files
}

#[tokio::test]
async fn every_corpus_file_imports_or_fails_clearly_and_the_worker_survives_with_bounded_memory() {
    let app = TestApp::spawn().await;
    let mut worker = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;
    let mapped = app.tenant().await;
    let mut mapped_rows = 0u64;
    let files = corpus_files();
    assert!(files.len() > 50, "the corpus is there: {}", files.len());
    let mut summary = Vec::new();
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
        let extension = name.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
        let bytes = std::fs::read(&path).expect("read");
        let upload_name = match extension.as_str() {
            "csv" | "tsv" | "psv" | "ssv" => format!("{name}.csv"),
            _ => name.clone(),
        };
        let reply = app.upload(&admin, &upload_name, bytes, &[("entity", "leads")]).await;
        if matches!(extension.as_str(), "xls" | "xlsb" | "ods") {
            reply.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
            summary.push(format!("{name}: refused at upload"));
            continue;
        }
        if extension == "xlsx" && reply.status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            summary.push(format!("{name}: refused at upload ({})", reply.body["error"]));
            continue;
        }
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{name}: {}", reply.body);
        let import = app.wait_import(&admin, reply.id(), Duration::from_secs(60)).await;
        let status = import["status"].as_str().expect("status");
        match status {
            "completed" | "completed_with_errors" => {
                let total = import["total_rows"].as_i64().expect("total");
                let accounted = ["created", "updated", "skipped", "failed"]
                    .iter()
                    .map(|k| import[k].as_i64().unwrap_or(0))
                    .sum::<i64>();
                assert_eq!(accounted, total, "{name}: every row is accounted for: {import}");
            }
            "failed" => {
                let error = import["error"].as_str().unwrap_or_default();
                assert!(error.len() > 15 && !error.contains("panicked"), "{name}: a clear reason: {import}");
            }
            other => panic!("{name}: ended {other}: {import}"),
        }
        summary.push(format!("{name}: {status} {}", import["error"].as_str().unwrap_or("")));
        assert!(worker.child.try_wait().expect("try_wait").is_none(), "the worker died on {name}");

        // Most files are not lead lists. Map their first column to first_name, so every readable file's every
        // row goes through the whole pipeline too.
        let error = import["error"].as_str().unwrap_or_default();
        if status == "failed" && error.contains("no column for first_name") {
            let format = if extension == "xlsx" { FileFormat::Xlsx } else { FileFormat::Csv };
            let (header, read) = crm_shared::imports::reader::count_rows(&path, format).expect("readable");
            let rows = read.data_rows;
            let mapping = json!({ header.names[0].clone(): "first_name" }).to_string();
            let bytes = std::fs::read(&path).expect("read");
            let id = import_file(
                &app,
                &mapped,
                &upload_name,
                bytes,
                &[("entity", "leads"), ("mapping", &mapping), ("mode", "skip")],
            )
            .await;
            let import = app.wait_import(&mapped, id, Duration::from_secs(60)).await;
            assert!(
                matches!(import["status"].as_str(), Some("completed" | "completed_with_errors")),
                "{name} mapped: {import}"
            );
            let accounted = ["created", "updated", "skipped", "failed"]
                .iter()
                .map(|k| import[k].as_i64().unwrap_or(0))
                .sum::<i64>();
            assert_eq!(
                (import["total_rows"].as_i64(), accounted),
                (Some(rows as i64), rows as i64),
                "{name} mapped: {import}"
            );
            summary.push(format!("{name} (first column as first_name): {} of {rows} rows created", import["created"]));
            mapped_rows += rows;
        }
    }
    assert!(mapped_rows > 5_000, "the mapped pass read the corpus's rows: {mapped_rows}");
    // Quoted line breaks, whatever the line ends (LF, CRLF, CR files of csv-spectrum and csvkit): the same
    // value, with the break as LF.
    let multi_line: Vec<String> =
        sqlx::query_scalar("SELECT first_name FROM leads WHERE tenant_id = $1 AND first_name LIKE 'Once upon%'")
            .bind(mapped.tenant_id)
            .fetch_all(&app.db)
            .await
            .expect("leads");
    assert_eq!(multi_line.len(), 3, "{multi_line:?}");
    // csvkit's CR file has no space before its break.
    assert!(multi_line.iter().all(|v| v == "Once upon \na time" || v == "Once upon\na time"), "{multi_line:?}");
    let pid = worker.child.id().expect("pid");
    let peak = peak_memory_bytes(pid).expect("VmHWM");
    let codes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT code, count(*) FROM import_errors WHERE tenant_id = $1 GROUP BY code ORDER BY count(*) DESC",
    )
    .bind(admin.tenant_id)
    .fetch_all(&app.db)
    .await
    .expect("codes");
    let leads = app.count_rows("leads", Some(admin.tenant_id)).await;
    println!(
        "corpus results:\n{}\nleads written: {leads}; failed rows by code: {codes:?}\nworker peak memory: {} MiB",
        summary.join("\n"),
        peak / (1024 * 1024)
    );
    assert!(peak < 512 * 1024 * 1024, "worker peak memory {peak} bytes");
    // The realistic customer exports (11,100 rows) import their valid rows; Faker's phone numbers with
    // impossible exchanges fail as invalid_phone, and repeated emails as duplicates.
    assert!(leads > 3_000, "the crm-samples exports imported: {leads} leads");
    let known = [
        "invalid_phone",
        "duplicate_in_file",
        "duplicate_existing",
        "invalid_email",
        "malformed_row",
        "missing_required",
        "value_too_long",
        "invalid_date",
    ];
    assert!(codes.iter().all(|(code, _)| known.contains(&code.as_str())), "{codes:?}");

    // A clean import right after still succeeds.
    let clean = admin_clean_import(&app, &admin).await;
    assert_eq!(clean["status"], "completed", "{clean}");
    assert!(worker.child.try_wait().expect("try_wait").is_none());
}

async fn admin_clean_import(app: &TestApp, admin: &Session) -> Value {
    let id = import_file(app, admin, "clean.csv", valid_leads_csv(50, "clean"), &[("entity", "leads")]).await;
    app.wait_import(admin, id, Duration::from_secs(30)).await
}

/// A zip whose one entry inflates 1000:1: refused by the check before calamine opens it.
fn zip_bomb() -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut buffer);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    writer.start_file("xl/worksheets/sheet1.xml", options).expect("entry");
    let zeros = vec![b' '; 1024 * 1024];
    for _ in 0..64 {
        writer.write_all(&zeros).expect("write");
    }
    writer.finish().expect("finish");
    buffer.into_inner()
}

#[tokio::test]
async fn limits_answer_with_a_message_and_store_nothing() {
    let database = crm_tests::fresh_database().await;
    let app = TestApp::spawn_configured(database, crm_tests::redis_url(), &[("IMPORT_MAX_BYTES", "4096")]).await;
    let mut worker = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;
    let storage = std::env::temp_dir().join("crm-test-storage").join("imports").join(admin.tenant_id.to_string());

    let big = app.upload(&admin, "big.csv", valid_leads_csv(500, "big"), &[("entity", "leads")]).await;
    big.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let xls = app
        .upload(&admin, "old.xls", vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1], &[("entity", "leads")])
        .await;
    xls.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert!(xls.body["error"].as_str().is_some_and(|e| e.contains(".xlsx")), "{}", xls.body);
    let disguised =
        app.upload(&admin, "data.csv", b"PK\x03\x04 not text at all".to_vec(), &[("entity", "leads")]).await;
    disguised.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let pdf = app.upload(&admin, "leads.pdf", b"%PDF-1.4 ...".to_vec(), &[("entity", "leads")]).await;
    pdf.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let no_entity = app.upload(&admin, "leads.csv", valid_leads_csv(2, "x"), &[]).await;
    no_entity.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let bad_mode =
        app.upload(&admin, "leads.csv", valid_leads_csv(2, "x"), &[("entity", "leads"), ("mode", "merge")]).await;
    bad_mode.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(app.count_rows("imports", Some(admin.tenant_id)).await, 0, "no import was recorded");
    let stored = std::fs::read_dir(&storage).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(stored, 0, "no file was kept in {}", storage.display());

    // Roles that may not create records may not import either.
    for role in ["readonly", "support"] {
        let user = app.user(&admin, role, &[]).await;
        app.upload(&user, "leads.csv", valid_leads_csv(2, role), &[("entity", "leads")])
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(app.count_rows("imports", Some(admin.tenant_id)).await, 0, "no import was recorded");

    // Files the worker refuses: a zip bomb named .xlsx (the app's limit is small, so it is a small bomb), a file
    // with no column for a required field.
    let database = crm_tests::fresh_database().await;
    let roomy = TestApp::spawn_configured(database, crm_tests::redis_url(), &[]).await;
    let mut roomy_worker = roomy.start_worker(&["--queues", "imports"]).await;
    let admin = roomy.tenant().await;
    let id = import_file(&roomy, &admin, "bomb.xlsx", zip_bomb(), &[("entity", "leads")]).await;
    let bomb = roomy.wait_import(&admin, id, Duration::from_secs(30)).await;
    assert_eq!(bomb["status"], "failed", "{bomb}");
    assert!(bomb["error"].as_str().is_some_and(|e| e.contains("zip bomb")), "{bomb}");
    let id = import_file(&roomy, &admin, "people.csv", b"name,phone\nAda,1\n".to_vec(), &[("entity", "leads")]).await;
    let unmapped = roomy.wait_import(&admin, id, Duration::from_secs(30)).await;
    assert_eq!(unmapped["status"], "failed");
    assert!(unmapped["error"].as_str().is_some_and(|e| e.contains("first_name")), "{unmapped}");
    assert_eq!(roomy.count_rows("leads", Some(admin.tenant_id)).await, 0);
    assert!(roomy_worker.child.try_wait().expect("try_wait").is_none(), "the worker survived");
    assert!(worker.child.try_wait().expect("try_wait").is_none());
}

#[tokio::test]
async fn projects_find_their_client_by_name_or_email() {
    let app = TestApp::spawn().await;
    let _worker: Process = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;
    let client = app.post("/api/v1/clients", &admin, json!({"name": "Acme Corp", "email": "hello@acme.test"})).await;
    assert_eq!(client.status, StatusCode::CREATED, "{}", client.body);
    let file = "client,name,value,start_date,close_date,status\n\
        acme corp,Website,\"$1,200.50\",2024-01-15,03/31/2024,active\n\
        HELLO@acme.test,App,,,,pending\n\
        Nobody Inc,Ghost,,,,\n\
        Acme Corp,Bad value,12.345,,,\n\
        Acme Corp,Website,,,,\n";
    let id = import_file(&app, &admin, "projects.csv", file.as_bytes().to_vec(), &[("entity", "projects")]).await;
    let done = app.wait_import(&admin, id, Duration::from_secs(30)).await;
    assert_eq!((&done["created"], &done["failed"]), (&json!(2), &json!(3)), "{done}");
    let codes: Vec<(i64, String)> = app
        .import_errors(&admin, id)
        .await
        .iter()
        .map(|e| (e["row_number"].as_i64().unwrap_or(0), e["code"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(codes, [(4, "unknown_client".into()), (5, "invalid_number".into()), (6, "duplicate_in_file".into())]);
    let value: Option<String> =
        sqlx::query_scalar("SELECT value::text FROM projects WHERE tenant_id = $1 AND name = 'Website'")
            .bind(admin.tenant_id)
            .fetch_one(&app.db)
            .await
            .expect("project");
    assert_eq!(value.as_deref(), Some("1200.50"));
}

#[tokio::test]
async fn an_import_survives_postgres_dropping_every_connection_mid_file() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;
    const ROWS: i64 = 150_000;
    let id = import_file(&app, &admin, "big.csv", valid_leads_csv(ROWS as usize, "pg"), &[("entity", "leads")]).await;
    let database: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&app.db).await.expect("name");
    // What a Postgres restart does to every client: all of this database's connections are cut, twice, while
    // batches are being written.
    for threshold in [20_000, 60_000] {
        wait_processed(&app, id, threshold, Duration::from_secs(120)).await;
        let cut: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_all(&app.db)
        .await
        .expect("terminate");
        assert!(!cut.is_empty(), "there were connections to cut");
    }
    let done = app.wait_import(&admin, id, Duration::from_secs(180)).await;
    assert_eq!(
        (&done["status"], &done["created"], &done["failed"], &done["processed_rows"]),
        (&json!("completed"), &json!(ROWS), &json!(0), &json!(ROWS)),
        "{done}"
    );
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT lower(email)) FROM leads WHERE tenant_id = $1")
            .bind(admin.tenant_id)
            .fetch_one(&app.db)
            .await
            .expect("counts");
    assert_eq!((rows, distinct), (ROWS, ROWS), "every row once");
    let job_id = Uuid::parse_str(done["job_id"].as_str().expect("job id")).expect("uuid");
    // Batches are written nearly all the time, so a cut lands inside one: the job failed, was retried and
    // resumed at its checkpoint (measured: attempts 3, both cuts interrupting it, in each of two runs).
    let attempts = app.job(job_id).await.attempts;
    assert!(attempts >= 2, "no cut interrupted the import (attempts {attempts}); the test proved nothing");
}

#[tokio::test]
async fn a_worker_runs_two_imports_at_once_and_the_rest_wait_their_turn() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports", "--concurrency", "4"]).await;
    let admin = app.tenant().await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(
            import_file(
                &app,
                &admin,
                "leads.csv",
                valid_leads_csv(40_000, &format!("slot{n}")),
                &[("entity", "leads")],
            )
            .await,
        );
    }
    let mut most_running = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM imports WHERE tenant_id = $1")
            .bind(admin.tenant_id)
            .fetch_all(&app.db)
            .await
            .expect("statuses");
        most_running = most_running.max(statuses.iter().filter(|status| *status == "running").count());
        if statuses.iter().all(|status| status == "completed") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "imports did not finish: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(most_running, 2, "at most two imports read their files at once, and two did");
    assert_eq!(count_leads(&app, admin.tenant_id).await, 160_000);
}
