//! CRUD, trash, filters, search, sort and pagination of the CRM records.

use crm_tests::{RECORD_KINDS, TestApp, create_record, patch_body};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn every_kind_goes_through_create_update_trash_and_restore() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    for kind in RECORD_KINDS {
        let id = create_record(&app, &admin, kind).await;
        let path = format!("/api/v1/{kind}/{id}");
        let fetched = app.get(&path, &admin).await;
        assert_eq!(fetched.status, StatusCode::OK);
        assert_eq!(fetched.data()["created_by"], json!(admin.user_id));
        let updated = app.patch(&path, &admin, patch_body(kind)).await;
        assert_eq!(updated.status, StatusCode::OK, "{kind}: {}", updated.body);
        assert!(updated.data()["updated_at"].as_str() > fetched.data()["updated_at"].as_str());

        assert_eq!(app.delete(&path, &admin).await.status, StatusCode::NO_CONTENT);
        app.get(&path, &admin).await.assert_error(StatusCode::NOT_FOUND, "not_found");
        app.delete(&path, &admin).await.assert_error(StatusCode::NOT_FOUND, "not_found");
        let trash = app.get(&format!("/api/v1/{kind}?deleted=true"), &admin).await;
        assert_eq!(trash.ids(), [id], "{kind}");
        assert!(!app.get(&format!("/api/v1/{kind}"), &admin).await.ids().contains(&id));

        let restored = app.post(&format!("{path}/restore"), &admin, json!({})).await;
        assert_eq!(restored.status, StatusCode::OK, "{kind}: {}", restored.body);
        assert!(restored.data()["deleted_at"].is_null());
        app.post(&format!("{path}/restore"), &admin, json!({})).await.assert_error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(app.get(&path, &admin).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn lead_fields_are_normalised_and_patch_null_clears() {
    let app = TestApp::spawn().await;
    let admin = app.tenant_in("GB", "Europe/London").await;
    let created = app
        .post(
            "/api/v1/leads",
            &admin,
            json!({
                "first_name": "  Ada ", "last_name": "Lovelace", "email": "Ada@Example.com",
                "phone": "020 7946 0958", "lead_source": "social media", "status": "Converted",
                "company": "Analytical Engines",
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let lead = created.data();
    assert_eq!(lead["first_name"], "Ada");
    assert_eq!(lead["phone"], "+442079460958", "the tenant's region (GB) applies");
    assert_eq!(lead["lead_source"], "Social Media");
    assert_eq!(lead["status"], "converted");
    assert!(lead["converted_at"].is_string(), "converting stamps converted_at");

    let id = created.id();
    let cleared =
        app.patch(&format!("/api/v1/leads/{id}"), &admin, json!({ "last_name": null, "company": "New Co" })).await;
    assert!(cleared.data()["last_name"].is_null());
    assert_eq!(cleared.data()["company"], "New Co");
    assert_eq!(cleared.data()["email"], "Ada@Example.com", "absent fields stay");
    let required = app.patch(&format!("/api/v1/leads/{id}"), &admin, json!({ "first_name": null })).await;
    required.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(app.get(&format!("/api/v1/leads/{id}"), &admin).await.data()["first_name"], "Ada");
}

#[tokio::test]
async fn duplicate_emails_conflict_case_insensitively_including_on_restore() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let first = app.post("/api/v1/leads", &admin, json!({ "first_name": "A", "email": "dup@example.com" })).await.id();
    let again = app.post("/api/v1/leads", &admin, json!({ "first_name": "B", "email": "DUP@example.com" })).await;
    again.assert_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(again.field_error("email"), Some("a lead with this email already exists"));
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 1);

    // A deleted lead frees its email; restoring it while another holds it is a conflict.
    assert_eq!(app.delete(&format!("/api/v1/leads/{first}"), &admin).await.status, StatusCode::NO_CONTENT);
    let second = app.post("/api/v1/leads", &admin, json!({ "first_name": "B", "email": "dup@example.com" })).await;
    assert_eq!(second.status, StatusCode::CREATED);
    app.post(&format!("/api/v1/leads/{first}/restore"), &admin, json!({}))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(app.get("/api/v1/leads?deleted=true", &admin).await.ids(), [first]);

    // Another tenant may use the same email.
    let other = app.tenant().await;
    assert_eq!(
        app.post("/api/v1/leads", &other, json!({ "first_name": "C", "email": "dup@example.com" })).await.status,
        StatusCode::CREATED
    );
    // Clients too.
    app.post("/api/v1/clients", &admin, json!({ "name": "X", "email": "c@example.com" })).await;
    app.post("/api/v1/clients", &admin, json!({ "name": "Y", "email": "C@EXAMPLE.COM" }))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn lists_filter_search_sort_and_page() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let rep = app.user(&admin, "sales", &[]).await;
    let rows = [
        ("Zoe", "new", "Website", Some(rep.user_id)),
        ("Adam", "contacted", "Referral", None),
        ("Mia", "qualified", "Website", Some(rep.user_id)),
        ("Liam", "lost", "Partner", None),
        ("Emma", "new", "Cold Call", None),
    ];
    for (name, status, source, assigned) in rows {
        let reply = app
            .post(
                "/api/v1/leads",
                &admin,
                json!({ "first_name": name, "status": status, "lead_source": source,
                "company": format!("{name} 50%_Corp"), "assigned_to_user_id": assigned }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let names = |reply: &crm_tests::Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["first_name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let by_status = app.get("/api/v1/leads?status=new,qualified&sort=first_name&include_total=true", &admin).await;
    assert_eq!(names(&by_status), ["Emma", "Mia", "Zoe"]);
    assert_eq!(by_status.body["total"], 3);
    assert_eq!(names(&app.get("/api/v1/leads?lead_source=website&sort=-first_name", &admin).await), ["Zoe", "Mia"]);
    assert_eq!(
        names(&app.get(&format!("/api/v1/leads?assigned_to={}&sort=first_name", rep.user_id), &admin).await),
        ["Mia", "Zoe"]
    );
    assert_eq!(names(&app.get("/api/v1/leads?q=LIAM", &admin).await), ["Liam"]);
    // LIKE wildcards in q are literal: "50%_" matches every company, "5_%" none.
    assert_eq!(app.get("/api/v1/leads?q=50%25_&include_total=true", &admin).await.body["total"], 5);
    assert_eq!(app.get("/api/v1/leads?q=5_%25&include_total=true", &admin).await.body["total"], 0);

    let first_page = app.get("/api/v1/leads?sort=first_name&limit=2", &admin).await;
    assert_eq!(names(&first_page), ["Adam", "Emma"]);
    assert!(first_page.body["total"].is_null(), "total only on request");
    assert_eq!((first_page.body["limit"].clone(), first_page.body["offset"].clone()), (json!(2), json!(0)));
    assert_eq!(names(&app.get("/api/v1/leads?sort=first_name&limit=2&offset=2", &admin).await), ["Liam", "Mia"]);
    assert_eq!(names(&app.get("/api/v1/leads?sort=first_name&limit=2&offset=4", &admin).await), ["Zoe"]);

    // Descending on a column that may be empty keeps the empty ones last.
    let converted = app.get("/api/v1/leads?sort=-company&limit=1", &admin).await;
    assert!(converted.body["items"][0]["company"].is_string());
    let emptied = app.get("/api/v1/leads?q=Zoe", &admin).await.ids()[0];
    app.patch(&format!("/api/v1/leads/{emptied}"), &admin, json!({ "company": null })).await;
    assert_eq!(names(&app.get("/api/v1/leads?sort=-company", &admin).await).last().map(String::as_str), Some("Zoe"));
    assert_eq!(names(&app.get("/api/v1/leads?sort=company", &admin).await).last().map(String::as_str), Some("Zoe"));

    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    assert_eq!(
        app.get(&format!("/api/v1/leads?created_from={tomorrow}&include_total=true"), &admin).await.body["total"],
        0
    );
    assert_eq!(
        app.get(&format!("/api/v1/leads?created_to={tomorrow}&include_total=true"), &admin).await.body["total"],
        5
    );
}

#[tokio::test]
async fn projects_interactions_and_tickets_validate_their_own_rules() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let client = create_record(&app, &admin, "clients").await;
    let project = app
        .post("/api/v1/projects", &admin, json!({ "client_id": client, "name": "Big deal", "value": 12500.5, "start_date": "2026-01-15", "status": "completed" }))
        .await;
    assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
    assert_eq!(project.data()["value"], "12500.50");
    let reversed = app
        .post(
            "/api/v1/projects",
            &admin,
            json!({ "client_id": client, "name": "X", "start_date": "2026-05-01", "close_date": "2026-04-01" }),
        )
        .await;
    reversed.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(reversed.field_error("close_date").is_some());
    let no_client = app.post("/api/v1/projects", &admin, json!({ "name": "X", "value": "-5" })).await;
    assert_eq!(no_client.field_error("client_id"), Some("is required"));
    assert_eq!(no_client.field_error("value"), Some("must not be negative"));

    let orphan =
        app.post("/api/v1/interactions", &admin, json!({ "type": "call", "contact_date": "2026-11-01" })).await;
    orphan.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(orphan.field_error("lead_id").is_some());
    let interaction = app
        .post(
            "/api/v1/interactions",
            &admin,
            json!({ "type": "Follow Up", "contact_date": "2026-11-01 09:00", "client_id": client }),
        )
        .await;
    assert_eq!(interaction.status, StatusCode::CREATED, "{}", interaction.body);
    assert_eq!(interaction.data()["type"], "follow_up");
    assert_eq!(interaction.data()["user_id"], json!(admin.user_id), "the caller by default");
    let detached =
        app.patch(&format!("/api/v1/interactions/{}", interaction.id()), &admin, json!({ "client_id": null })).await;
    detached.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let ticket = app.post("/api/v1/tickets", &admin, json!({ "subject": "Help", "status": "resolved" })).await;
    assert!(ticket.data()["closed_at"].is_string());
    let reopened = app.patch(&format!("/api/v1/tickets/{}", ticket.id()), &admin, json!({ "status": "open" })).await;
    assert!(reopened.data()["closed_at"].is_null(), "reopening clears closed_at");
    assert_eq!(reopened.data()["category"], "other");
    assert_eq!(
        app.post(&format!("/api/v1/tickets/{}/replies", ticket.id()), &admin, json!({ "body": " " })).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(app.count_rows("ticket_replies", None).await, 0);
}
