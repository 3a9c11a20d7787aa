//! The roles of contract §3: what each may see and do.

use crm_tests::{PASSWORD, TestApp, create_record};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn sales_see_only_what_they_created_or_are_assigned() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let rep = app.user(&admin, "sales", &[]).await;
    let other_rep = app.user(&admin, "sales", &[]).await;

    let own = create_record(&app, &rep, "leads").await;
    let theirs = create_record(&app, &other_rep, "leads").await;
    let assigned = app
        .post("/api/v1/leads", &admin, json!({ "first_name": "Given", "assigned_to_user_id": rep.user_id }))
        .await
        .id();
    let unassigned = create_record(&app, &admin, "leads").await;

    let list = app.get("/api/v1/leads?include_total=true", &rep).await;
    let mut seen = list.ids();
    seen.sort();
    let mut expected = vec![own, assigned];
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(list.body["total"], 2);
    for hidden in [theirs, unassigned] {
        app.get(&format!("/api/v1/leads/{hidden}"), &rep).await.assert_error(StatusCode::NOT_FOUND, "not_found");
        app.patch(&format!("/api/v1/leads/{hidden}"), &rep, json!({ "status": "lost" }))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
        app.delete(&format!("/api/v1/leads/{hidden}"), &rep).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    // The other rep's lead is untouched.
    let untouched = app.get(&format!("/api/v1/leads/{theirs}"), &admin).await;
    assert_eq!(untouched.data()["status"], "new");
    assert!(untouched.data()["deleted_at"].is_null());
    // Assigned records may be worked on.
    let worked = app.patch(&format!("/api/v1/leads/{assigned}"), &rep, json!({ "status": "contacted" })).await;
    assert_eq!(worked.status, StatusCode::OK, "{}", worked.body);
    // The admin sees all four.
    assert_eq!(app.get("/api/v1/leads?include_total=true", &admin).await.body["total"], 4);
}

#[tokio::test]
async fn managers_see_the_records_of_their_teams() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let east = app.team(&admin, "East").await;
    let west = app.team(&admin, "West").await;
    let manager = app.user(&admin, "manager", &[east]).await;
    let east_rep = app.user(&admin, "sales", &[east]).await;
    let west_rep = app.user(&admin, "sales", &[west]).await;

    let east_lead = create_record(&app, &east_rep, "leads").await;
    let west_lead = create_record(&app, &west_rep, "leads").await;
    let assigned_east = app
        .post("/api/v1/tickets", &admin, json!({ "subject": "East's", "assigned_to_user_id": east_rep.user_id }))
        .await
        .id();
    let manager_own = create_record(&app, &manager, "clients").await;

    assert_eq!(app.get("/api/v1/leads", &manager).await.ids(), [east_lead]);
    app.get(&format!("/api/v1/leads/{west_lead}"), &manager).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.get("/api/v1/tickets", &manager).await.ids(), [assigned_east]);
    assert_eq!(app.get("/api/v1/clients", &manager).await.ids(), [manager_own]);
    let reassigned = app.patch(&format!("/api/v1/leads/{east_lead}"), &manager, json!({ "status": "qualified" })).await;
    assert_eq!(reassigned.status, StatusCode::OK);

    // Moving the west rep into the manager's team widens what the manager sees.
    let members = app
        .put(
            &format!("/api/v1/teams/{east}/members"),
            &admin,
            json!({ "user_ids": [manager.user_id, east_rep.user_id, west_rep.user_id] }),
        )
        .await;
    assert_eq!(members.status, StatusCode::OK, "{}", members.body);
    assert_eq!(members.data()["member_ids"].as_array().map(Vec::len), Some(3));
    assert_eq!(app.get("/api/v1/leads", &manager).await.ids().len(), 2);
}

#[tokio::test]
async fn readonly_reads_like_sales_and_never_writes() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let viewer = app.user(&admin, "readonly", &[]).await;
    let assigned = app
        .post("/api/v1/leads", &admin, json!({ "first_name": "Seen", "assigned_to_user_id": viewer.user_id }))
        .await
        .id();
    create_record(&app, &admin, "leads").await;

    assert_eq!(app.get("/api/v1/leads", &viewer).await.ids(), [assigned]);
    assert_eq!(app.get(&format!("/api/v1/leads/{assigned}"), &viewer).await.status, StatusCode::OK);
    let leads_before = app.count_rows("leads", Some(admin.tenant_id)).await;
    for kind in crm_tests::RECORD_KINDS {
        app.post(&format!("/api/v1/{kind}"), &viewer, json!({})).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    }
    app.patch(&format!("/api/v1/leads/{assigned}"), &viewer, json!({ "status": "lost" }))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.delete(&format!("/api/v1/leads/{assigned}"), &viewer).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, leads_before);
    assert_eq!(app.get(&format!("/api/v1/leads/{assigned}"), &admin).await.data()["status"], "new");
}

#[tokio::test]
async fn support_handles_every_ticket_and_only_reads_leads_and_clients() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let agent = app.user(&admin, "support", &[]).await;
    let rep = app.user(&admin, "sales", &[]).await;
    let ticket = create_record(&app, &rep, "tickets").await;
    let lead = create_record(&app, &rep, "leads").await;
    let client = create_record(&app, &rep, "clients").await;

    assert_eq!(app.get("/api/v1/tickets", &agent).await.ids(), [ticket]);
    let closed = app.patch(&format!("/api/v1/tickets/{ticket}"), &agent, json!({ "status": "closed" })).await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    assert!(closed.data()["closed_at"].is_string(), "closing stamps closed_at");
    let reply = app.post(&format!("/api/v1/tickets/{ticket}/replies"), &agent, json!({ "body": "Fixed in 2.1" })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let replies = app.get(&format!("/api/v1/tickets/{ticket}/replies"), &rep).await;
    assert_eq!(replies.body["items"][0]["body"], "Fixed in 2.1");

    assert_eq!(app.get(&format!("/api/v1/leads/{lead}"), &agent).await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("/api/v1/clients/{client}"), &agent).await.status, StatusCode::OK);
    app.patch(&format!("/api/v1/leads/{lead}"), &agent, json!({ "status": "lost" }))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.post("/api/v1/clients", &agent, json!({ "name": "X" })).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.get("/api/v1/projects", &agent).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.get("/api/v1/interactions", &agent).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(app.count_rows("clients", Some(admin.tenant_id)).await, 1);
}

#[tokio::test]
async fn only_admins_manage_users_and_teams() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let manager = app.user(&admin, "manager", &[]).await;
    let rep = app.user(&admin, "sales", &[]).await;
    let users_before = app.count_rows("users", Some(admin.tenant_id)).await;
    for caller in [&manager, &rep] {
        app.get("/api/v1/users", caller).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
        app.post(
            "/api/v1/users",
            caller,
            json!({ "email": "x@y.test", "name": "X", "password": PASSWORD, "role": "admin" }),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
        app.patch(&format!("/api/v1/users/{}", caller.user_id), caller, json!({ "role": "admin" }))
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden");
        app.post("/api/v1/teams", caller, json!({ "name": "Mine" }))
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden");
        app.get("/api/v1/audit-log", caller).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(app.count_rows("users", Some(admin.tenant_id)).await, users_before);
    assert_eq!(app.count_rows("teams", Some(admin.tenant_id)).await, 0);

    let audit = app.get("/api/v1/audit-log?action=user_created", &admin).await;
    assert_eq!(audit.body["items"].as_array().map(Vec::len), Some(2), "{}", audit.body);
    let duplicate = app
        .post(
            "/api/v1/users",
            &admin,
            json!({ "email": rep.email.to_uppercase(), "name": "Again", "password": PASSWORD, "role": "sales" }),
        )
        .await;
    duplicate.assert_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(app.count_rows("users", Some(admin.tenant_id)).await, users_before);
}

#[tokio::test]
async fn deactivation_and_role_changes_take_effect_at_once_and_are_audited() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let rep = app.user(&admin, "sales", &[]).await;
    let lead = create_record(&app, &rep, "leads").await;

    let promoted = app.patch(&format!("/api/v1/users/{}", rep.user_id), &admin, json!({ "role": "manager" })).await;
    assert_eq!(promoted.data()["role"], "manager");
    // The old token carries the old role: it stops working.
    app.get("/api/v1/leads", &rep).await.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let deactivated = app.patch(&format!("/api/v1/users/{}", rep.user_id), &admin, json!({ "is_active": false })).await;
    assert_eq!(deactivated.data()["is_active"], false);
    let login = app.login(&rep.email, PASSWORD).await;
    login.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(login.body["error"], "this account has been deactivated");
    // Their records stay.
    assert_eq!(app.get(&format!("/api/v1/leads/{lead}"), &admin).await.status, StatusCode::OK);

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY created_at, id")
            .bind(admin.tenant_id)
            .fetch_all(&app.db)
            .await
            .expect("audit");
    assert_eq!(actions, ["user_created", "role_changed", "user_deactivated", "login_failed"]);

    // The last admin cannot remove themselves.
    let last = app.patch(&format!("/api/v1/users/{}", admin.user_id), &admin, json!({ "role": "sales" })).await;
    last.assert_error(StatusCode::CONFLICT, "last_admin");
    let still_admin: String = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(admin.user_id)
        .fetch_one(&app.db)
        .await
        .expect("role");
    assert_eq!(still_admin, "admin");
}

/// Issue 9, finding 10: a rep could create an interaction on another rep's lead, or a project on another rep's
/// client (201), which also told them the id existed.
#[tokio::test]
async fn references_must_be_records_the_caller_can_see() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let rep = app.user(&admin, "sales", &[]).await;
    let other = app.user(&admin, "sales", &[]).await;
    let their_lead = create_record(&app, &other, "leads").await;
    let their_client = create_record(&app, &other, "clients").await;
    let my_client = create_record(&app, &rep, "clients").await;
    let before = (app.count_rows("projects", None).await, app.count_rows("interactions", None).await);

    let project = app.post("/api/v1/projects", &rep, json!({ "client_id": their_client, "name": "Poach" })).await;
    project.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(project.field_error("client_id"), Some("no such client in this tenant"), "{}", project.body);
    let call = json!({ "type": "call", "contact_date": "2026-11-01T10:00:00Z", "lead_id": their_lead });
    let interaction = app.post("/api/v1/interactions", &rep, call).await;
    interaction.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(interaction.field_error("lead_id"), Some("no such lead in this tenant"), "{}", interaction.body);
    assert_eq!(
        (app.count_rows("projects", None).await, app.count_rows("interactions", None).await),
        before,
        "nothing was written"
    );

    // Moving one's own project onto a hidden client is refused the same way; one's own client still works.
    let mine = app.post("/api/v1/projects", &rep, json!({ "client_id": my_client, "name": "Mine" })).await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.body);
    let moved = app.patch(&format!("/api/v1/projects/{}", mine.id()), &rep, json!({ "client_id": their_client })).await;
    moved.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let stored: uuid::Uuid = sqlx::query_scalar("SELECT client_id FROM projects WHERE id = $1")
        .bind(mine.id())
        .fetch_one(&app.db)
        .await
        .expect("project");
    assert_eq!(stored, my_client);
    // An admin sees the whole tenant, so the same references are fine for them.
    let admins = app.post("/api/v1/projects", &admin, json!({ "client_id": their_client, "name": "Fine" })).await;
    assert_eq!(admins.status, StatusCode::CREATED, "{}", admins.body);
}

/// Issue 9, finding 11: `password`, `12345678` and eight spaces were accepted as passwords.
#[tokio::test]
async fn weak_passwords_are_refused_naming_the_field_and_no_user_is_made() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let users_before = app.count_rows("users", Some(admin.tenant_id)).await;
    let email = "grace.hopper@tenant.test";
    for weak in ["password", "12345678", "        ", "password1234", email, "Grace.Hopper1"] {
        let reply = app
            .post(
                "/api/v1/users",
                &admin,
                json!({ "email": email, "name": "Grace", "password": weak, "role": "sales" }),
            )
            .await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(reply.field_error("password").is_some(), "{weak:?}: {}", reply.body);
    }
    assert_eq!(app.count_rows("users", Some(admin.tenant_id)).await, users_before, "no user was made");
    let fine = app
        .post(
            "/api/v1/users",
            &admin,
            json!({ "email": email, "name": "Grace", "password": PASSWORD, "role": "sales" }),
        )
        .await;
    assert_eq!(fine.status, StatusCode::CREATED, "{}", fine.body);
}
