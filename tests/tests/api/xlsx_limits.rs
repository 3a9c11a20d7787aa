//! The §6 limits on what an .xlsx makes calamine hold, end to end: a hostile file is refused with one clear
//! sentence before calamine opens it, nothing of it is written, and the worker goes on to import the next file.

use crm_tests::{Session, TestApp};
use reqwest::StatusCode;
use std::io::Write;
use std::time::Duration;
use uuid::Uuid;

fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut buffer);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        writer.start_file(*name, options).expect("entry");
        writer.write_all(bytes).expect("write");
    }
    writer.finish().expect("finish");
    buffer.into_inner()
}

/// A table of two texts that declares four billion: calamine would reserve 96 GB for it.
fn huge_reservation() -> Vec<u8> {
    let table = "<?xml version=\"1.0\"?><sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" \
                 count=\"2\" uniqueCount=\"4000000000\"><si><t>first_name</t></si><si><t>Ada</t></si></sst>";
    zip_of(&[("xl/sharedStrings.xml", table.as_bytes().to_vec())])
}

/// 250,000 cell formats, each with a different attribute so the part compresses well under 100:1 (the ratio
/// rule does not catch it); calamine would build a style of about 150 bytes for each.
fn style_flood() -> Vec<u8> {
    let mut styles = String::from("<styleSheet><cellXfs>");
    for index in 0..250_000u64 {
        styles.push_str(&format!("<xf numFmtId=\"0\" xfId=\"{}\"/>", index.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40));
    }
    styles.push_str("</cellXfs></styleSheet>");
    zip_of(&[("xl/styles.xml", styles.into_bytes())])
}

fn leads_xlsx() -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    let rows = [["first_name", "email"], ["Ada", "ada@example.com"], ["Grace", "grace@example.com"]];
    for (row, cells) in rows.iter().enumerate() {
        for (column, cell) in cells.iter().enumerate() {
            sheet.write_string(row as u32, column as u16, *cell).expect("cell");
        }
    }
    workbook.save_to_buffer().expect("xlsx")
}

async fn import(app: &TestApp, admin: &Session, name: &str, bytes: Vec<u8>) -> (Uuid, serde_json::Value) {
    let reply = app.upload(admin, name, bytes, &[("entity", "leads")]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{name}: {}", reply.body);
    let id = reply.id();
    (id, app.wait_import(admin, id, Duration::from_secs(60)).await)
}

#[tokio::test]
async fn xlsx_files_calamine_could_not_hold_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let mut worker = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;

    let hostile = [
        ("reservation.xlsx", huge_reservation(), ["declaring 4000000000 distinct texts", "save the sheet as CSV"]),
        ("styles.xlsx", style_flood(), ["250000 cell formats, fonts, fills and borders", "at most 200000"]),
    ];
    for (name, bytes, sentences) in hostile {
        let (id, import) = import(&app, &admin, name, bytes).await;
        assert_eq!(import["status"], "failed", "{name}: {import}");
        let error = import["error"].as_str().unwrap_or_default();
        for sentence in sentences {
            assert!(error.contains(sentence), "{name}: {error}");
        }
        assert_eq!((&import["created"], &import["failed"]), (&serde_json::json!(0), &serde_json::json!(0)), "{import}");
        assert!(app.import_errors(&admin, id).await.is_empty(), "{name} stored no failed rows");
        assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 0, "{name} wrote no lead");
    }

    let (_, import) = import(&app, &admin, "leads.xlsx", leads_xlsx()).await;
    assert_eq!((&import["status"], &import["created"]), (&serde_json::json!("completed"), &serde_json::json!(2)));
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 2, "the next file imported, each row once");
    assert!(worker.child.try_wait().expect("try_wait").is_none(), "the worker survived");
}
