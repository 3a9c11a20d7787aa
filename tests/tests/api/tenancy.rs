//! Tenant isolation, in depth: the API answers 404 for another tenant's ids, and row-level security hides
//! other tenants' rows even from a query that forgets its tenant filter.

use crm_tests::{RECORD_KINDS, TestApp, create_record, patch_body};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn another_tenants_records_are_404_and_never_listed() {
    let app = TestApp::spawn().await;
    let alice = app.tenant().await;
    let mallory = app.tenant().await;
    for kind in RECORD_KINDS {
        let id = create_record(&app, &alice, kind).await;
        let rows_before = app.count_rows(kind, Some(alice.tenant_id)).await;
        let path = format!("/api/v1/{kind}/{id}");

        app.get(&path, &mallory).await.assert_error(StatusCode::NOT_FOUND, "not_found");
        app.patch(&path, &mallory, patch_body(kind)).await.assert_error(StatusCode::NOT_FOUND, "not_found");
        app.delete(&path, &mallory).await.assert_error(StatusCode::NOT_FOUND, "not_found");
        app.post(&format!("{path}/restore"), &mallory, json!({}))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");

        let list = app.get(&format!("/api/v1/{kind}?include_total=true"), &mallory).await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(!list.ids().contains(&id), "{kind}: another tenant's record listed");
        assert_eq!(list.body["total"], 0, "{kind}: {}", list.body);
        let trash = app.get(&format!("/api/v1/{kind}?deleted=true"), &mallory).await;
        assert!(!trash.ids().contains(&id));

        // Nothing changed for the owner: still there, unchanged, not deleted.
        let owner_view = app.get(&path, &alice).await;
        assert_eq!(owner_view.status, StatusCode::OK, "{kind}: {}", owner_view.body);
        assert!(owner_view.data()["deleted_at"].is_null());
        assert_eq!(app.count_rows(kind, Some(alice.tenant_id)).await, rows_before);
    }
}

#[tokio::test]
async fn another_tenants_users_teams_and_clients_cannot_be_referenced() {
    let app = TestApp::spawn().await;
    let alice = app.tenant().await;
    let mallory = app.tenant().await;
    let alice_team = app.team(&alice, "Alice's team").await;
    let alice_client = create_record(&app, &alice, "clients").await;

    app.get(&format!("/api/v1/users/{}", alice.user_id), &mallory)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.patch(&format!("/api/v1/users/{}", alice.user_id), &mallory, json!({ "is_active": false }))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.put(&format!("/api/v1/teams/{alice_team}/members"), &mallory, json!({ "user_ids": [mallory.user_id] }))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let users = app.get("/api/v1/users", &mallory).await;
    let emails: Vec<_> = users.body["items"].as_array().expect("items").iter().map(|u| u["email"].clone()).collect();
    assert_eq!(emails, [json!(mallory.email)]);

    // References across tenants are refused as unknown, and nothing is written.
    let lead =
        app.post("/api/v1/leads", &mallory, json!({ "first_name": "X", "assigned_to_user_id": alice.user_id })).await;
    lead.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(lead.field_error("assigned_to_user_id"), Some("no such user in this tenant"));
    let project = app.post("/api/v1/projects", &mallory, json!({ "client_id": alice_client, "name": "Steal" })).await;
    project.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(project.field_error("client_id"), Some("no such client in this tenant"));
    let team = app.post("/api/v1/teams", &mallory, json!({ "name": "M" })).await.id();
    app.put(&format!("/api/v1/teams/{team}/members"), &mallory, json!({ "user_ids": [alice.user_id] }))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(app.count_rows("leads", Some(mallory.tenant_id)).await, 0);
    assert_eq!(app.count_rows("projects", Some(mallory.tenant_id)).await, 0);
    assert_eq!(app.count_rows("user_teams", Some(mallory.tenant_id)).await, 0);
}

/// Row-level security alone: queries through the application role with no tenant filter at all.
#[tokio::test]
async fn row_level_security_hides_other_tenants_without_any_filter() {
    let app = TestApp::spawn().await;
    let alice = app.tenant().await;
    let bob = app.tenant().await;
    for kind in RECORD_KINDS {
        create_record(&app, &alice, kind).await;
        create_record(&app, &bob, kind).await;
    }
    let tables = [
        "tenants",
        "users",
        "leads",
        "clients",
        "projects",
        "interactions",
        "tickets",
        "audit_log",
        "teams",
        "user_teams",
        "ticket_replies",
        "jobs",
        "imports",
        "import_errors",
    ];
    for table in tables {
        let column = if table == "tenants" { "id" } else { "tenant_id" };
        let mut tx = app.db.begin().await.expect("begin");
        sqlx::query("SELECT set_config('role', 'crm_app', true), set_config('app.tenant_id', $1, true)")
            .bind(alice.tenant_id.to_string())
            .execute(&mut *tx)
            .await
            .expect("enter alice's tenant");
        let sql = format!("SELECT count(*) FILTER (WHERE {column} <> $1) FROM {table}");
        let foreign: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(alice.tenant_id)
            .fetch_one(&mut *tx)
            .await
            .expect("count");
        assert_eq!(foreign, 0, "{table}: another tenant's rows are visible");
        tx.rollback().await.expect("rollback");
    }
    // Alice's rows are visible to her; with no tenant set, nothing is.
    let mut tx = app.db.begin().await.expect("begin");
    sqlx::query("SELECT set_config('role', 'crm_app', true), set_config('app.tenant_id', $1, true)")
        .bind(alice.tenant_id.to_string())
        .execute(&mut *tx)
        .await
        .expect("enter");
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM leads").fetch_one(&mut *tx).await.expect("count");
    assert!(own >= 2, "alice sees her own leads");
    // Writing into another tenant is refused by the policy's WITH CHECK.
    let smuggled = sqlx::query("INSERT INTO leads (id, tenant_id, first_name) VALUES ($1, $2, 'x')")
        .bind(Uuid::now_v7())
        .bind(bob.tenant_id)
        .execute(&mut *tx)
        .await;
    let error = smuggled.expect_err("insert into another tenant must fail");
    assert!(error.to_string().contains("row-level security"), "{error}");
    tx.rollback().await.expect("rollback");

    let mut tx = app.db.begin().await.expect("begin");
    sqlx::query("SELECT set_config('role', 'crm_app', true)").execute(&mut *tx).await.expect("role");
    let unscoped: i64 = sqlx::query_scalar("SELECT count(*) FROM leads").fetch_one(&mut *tx).await.expect("count");
    assert_eq!(unscoped, 0, "no tenant set: no rows");
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&mut *tx).await.expect("count");
    assert_eq!(tenants, 0);
    tx.rollback().await.expect("rollback");
    // Bob's data is all still there.
    assert_eq!(app.count_rows("leads", Some(bob.tenant_id)).await, 2);
}
