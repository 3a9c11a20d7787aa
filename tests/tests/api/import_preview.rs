//! The console's mapping preview (`POST /api/v1/imports/preview`): the columns a file has, the field each fills
//! with and without a mapping, what stops an import, and the first rows, read as the import reads them. It
//! keeps nothing: no import, no job, no stored file.

use crm_tests::{Session, TestApp};
use reqwest::StatusCode;
use serde_json::json;

fn stored_previews(tenant: uuid::Uuid) -> usize {
    let folder = std::env::temp_dir().join("crm-test-storage").join("previews").join(tenant.to_string());
    std::fs::read_dir(folder).map(|entries| entries.count()).unwrap_or(0)
}

async fn nothing_kept(app: &TestApp, admin: &Session) {
    assert_eq!(app.count_rows("imports", Some(admin.tenant_id)).await, 0, "no import row");
    assert_eq!(app.count_rows("jobs", Some(admin.tenant_id)).await, 0, "no job");
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 0, "no lead");
    assert_eq!(stored_previews(admin.tenant_id), 0, "no stored file under previews/");
}

#[tokio::test]
async fn a_preview_shows_columns_fields_problems_and_first_rows_and_keeps_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    // A Windows-1252, semicolon-separated file from Excel: "Société" and "Müller" are single bytes.
    let mut file = b"Vorname;Nachname;E-mail;Soci\xe9t\xe9;Notes\r\n".to_vec();
    for i in 0..7 {
        file.extend_from_slice(format!("Ann{i};M").as_bytes());
        file.push(0xfc);
        file.extend_from_slice(format!("ller;ann{i}@x.test;Acme;n{i}\r\n").as_bytes());
    }

    let unmapped = app.preview(&admin, "from excel.csv", file.clone(), &[("entity", "leads")]).await;
    assert_eq!(unmapped.status, StatusCode::OK, "{}", unmapped.body);
    let data = unmapped.data();
    assert_eq!(
        (&data["format"], &data["delimiter"], &data["encoding"]),
        (&json!("csv"), &json!(";"), &json!("Windows-1252"))
    );
    let names: Vec<&str> =
        data["columns"].as_array().expect("array").iter().map(|c| c["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["Vorname", "Nachname", "E-mail", "Société", "Notes"]);
    assert_eq!(data["rows"].as_array().expect("array").len(), 5, "five rows shown");
    assert_eq!(data["rows"][0], json!(["Ann0", "Müller", "ann0@x.test", "Acme", "n0"]));
    let problem = data["problem"].as_str().expect("a problem without a mapping");
    assert!(problem.contains("first_name"), "{problem}");
    assert!(data["required"].as_array().expect("array").contains(&json!("first_name")));
    assert!(data["fields"].as_array().expect("array").contains(&json!("company")));

    // A mapping names every column to import, as the console sends it: E-mail is left out, so it is not read.
    let mapping = json!({ "Vorname": "first_name", "Nachname": "last_name", "Société": "company" }).to_string();
    let mapped =
        app.preview(&admin, "from excel.csv", file.clone(), &[("entity", "leads"), ("mapping", &mapping)]).await;
    assert_eq!(mapped.status, StatusCode::OK, "{}", mapped.body);
    let fields: Vec<_> =
        mapped.data()["columns"].as_array().expect("array").iter().map(|c| c["field"].clone()).collect();
    assert_eq!(fields, [json!("first_name"), json!("last_name"), json!(null), json!("company"), json!(null)]);
    assert_eq!(mapped.data()["problem"], json!(null), "{}", mapped.body);

    let twice = json!({ "Vorname": "first_name", "Nachname": "first_name" }).to_string();
    let clash = app.preview(&admin, "x.csv", file.clone(), &[("entity", "leads"), ("mapping", &twice)]).await;
    assert_eq!(clash.status, StatusCode::OK, "{}", clash.body);
    assert!(clash.data()["problem"].as_str().is_some_and(|p| p.contains("first_name")), "{}", clash.body);
    nothing_kept(&app, &admin).await;
}

#[tokio::test]
async fn a_bad_preview_request_says_why_and_keeps_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let csv = b"first_name,last_name\nA,B\n".to_vec();

    let wrong_type = app.preview(&admin, "leads.pdf", csv.clone(), &[("entity", "leads")]).await;
    wrong_type.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let no_entity = app.preview(&admin, "leads.csv", csv.clone(), &[("entity", "invoices")]).await;
    no_entity.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(no_entity.field_error("entity").is_some_and(|m| m.contains("invoices")), "{}", no_entity.body);
    let bad_mapping = app.preview(&admin, "leads.csv", csv.clone(), &[("entity", "leads"), ("mapping", "[1]")]).await;
    assert!(bad_mapping.field_error("mapping").is_some(), "{}", bad_mapping.body);
    let broken = app.preview(&admin, "leads.xlsx", b"not a zip at all".to_vec(), &[("entity", "leads")]).await;
    broken.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert!(broken.body["error"].as_str().is_some_and(|m| m.contains("not an Excel workbook")), "{}", broken.body);
    let empty = app.preview(&admin, "leads.csv", Vec::new(), &[("entity", "leads")]).await;
    empty.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(empty.field_error("file").is_some(), "{}", empty.body);

    for role in ["support", "readonly"] {
        let user = app.user(&admin, role, &[]).await;
        let refused = app.preview(&user, "leads.csv", csv.clone(), &[("entity", "leads")]).await;
        refused.assert_error(StatusCode::FORBIDDEN, "forbidden");
    }
    let anonymous = app
        .client
        .post(format!("{}/api/v1/imports/preview", app.address))
        .multipart(reqwest::multipart::Form::new().text("entity", "leads"))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    nothing_kept(&app, &admin).await;
}
