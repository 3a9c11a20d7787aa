//! An import writes only what its importer may write (contract §3, §6): an upsert never changes a record
//! outside the importer's rights, a project never attaches to a client its importer cannot see, nothing
//! discloses the other record, and each user sees only their own imports (admins all). The duplicate lookups
//! probe the key indexes even under row-level security.

use crm_tests::{Session, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

async fn import(app: &TestApp, who: &Session, name: &str, text: &str, fields: &[(&str, &str)]) -> Value {
    let reply = app.upload(who, name, text.as_bytes().to_vec(), fields).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    app.wait_import(who, reply.id(), Duration::from_secs(60)).await
}

fn id_of(import: &Value) -> Uuid {
    Uuid::parse_str(import["id"].as_str().expect("id")).expect("uuid")
}

async fn lead_row(app: &TestApp, id: Uuid) -> (Option<String>, Option<Uuid>, chrono::DateTime<chrono::Utc>) {
    sqlx::query_as("SELECT last_name, assigned_to_user_id, updated_at FROM leads WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("lead")
}

#[tokio::test]
async fn a_managers_upsert_changes_only_the_leads_of_their_teams_and_says_nothing_of_the_others() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;
    let team = app.team(&admin, "East").await;
    let manager = app.user(&admin, "manager", &[team]).await;
    let teammate = app.user(&admin, "sales", &[team]).await;
    let outsider = app.user(&admin, "sales", &[]).await;
    let theirs = app
        .post(
            "/api/v1/leads",
            &outsider,
            json!({ "first_name": "Olga", "last_name": "Outside", "email": "olga@x.test" }),
        )
        .await;
    let ours = app
        .post("/api/v1/leads", &teammate, json!({ "first_name": "Tim", "last_name": "Team", "email": "tim@x.test" }))
        .await;
    assert_eq!((theirs.status, ours.status), (StatusCode::CREATED, StatusCode::CREATED));
    let (theirs, ours) = (theirs.id(), ours.id());
    assert_eq!(app.get(&format!("/api/v1/leads/{theirs}"), &manager).await.status, StatusCode::NOT_FOUND);
    let before = lead_row(&app, theirs).await;

    let file = "first_name,last_name,email\nOlga,Taken,OLGA@x.test\nTim,Updated,tim@x.test\nNew,Lead,new@x.test\n";
    for dry_run in ["true", "false"] {
        let done = import(
            &app,
            &manager,
            "upsert.csv",
            file,
            &[("entity", "leads"), ("mode", "upsert"), ("dry_run", dry_run)],
        )
        .await;
        assert_eq!(
            (&done["status"], &done["created"], &done["updated"], &done["failed"]),
            (&json!("completed_with_errors"), &json!(1), &json!(1), &json!(1)),
            "dry run {dry_run}: {done}"
        );
        let errors = app.import_errors(&manager, id_of(&done)).await;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((&errors[0]["row_number"], &errors[0]["code"]), (&json!(2), &json!("duplicate_existing")));
        let message = errors[0]["message"].as_str().expect("message");
        assert!(message.contains("not one of the records you may change"), "{message}");
        for secret in [outsider.email.as_str(), &theirs.to_string(), &outsider.user_id.to_string(), "Outside"] {
            assert!(!message.contains(secret), "the message discloses {secret}: {message}");
        }
        assert_eq!(lead_row(&app, theirs).await, before, "the other team's lead is untouched (dry run {dry_run})");
    }
    assert_eq!(lead_row(&app, ours).await.0.as_deref(), Some("Updated"), "the team's lead was updated");
    let emails: Vec<String> = sqlx::query_scalar("SELECT lower(email) FROM leads WHERE tenant_id = $1 ORDER BY 1")
        .bind(admin.tenant_id)
        .fetch_all(&app.db)
        .await
        .expect("emails");
    assert_eq!(emails, ["new@x.test", "olga@x.test", "tim@x.test"], "nothing written twice");
}

#[tokio::test]
async fn a_sales_reps_project_import_cannot_attach_to_a_client_they_cannot_see() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;
    let rep = app.user(&admin, "sales", &[]).await;
    let other = app.user(&admin, "sales", &[]).await;
    let hidden = app.post("/api/v1/clients", &other, json!({ "name": "Hidden Co", "email": "hidden@x.test" })).await;
    let mine = app.post("/api/v1/clients", &rep, json!({ "name": "Mine Co" })).await;
    assert_eq!((hidden.status, mine.status), (StatusCode::CREATED, StatusCode::CREATED));
    let (hidden, mine) = (hidden.id(), mine.id());

    let file = "client,name,value\nHidden Co,P1,10\nhidden@x.test,P2,20\nMine Co,P3,30\n";
    let done = import(&app, &rep, "projects.csv", file, &[("entity", "projects")]).await;
    assert_eq!(
        (&done["status"], &done["created"], &done["failed"]),
        (&json!("completed_with_errors"), &json!(1), &json!(2)),
        "{done}"
    );
    let errors = app.import_errors(&rep, id_of(&done)).await;
    let codes: Vec<(&Value, &Value)> = errors.iter().map(|e| (&e["row_number"], &e["code"])).collect();
    assert_eq!(codes, [(&json!(2), &json!("unknown_client")), (&json!(3), &json!("unknown_client"))]);
    for error in &errors {
        let message = error["message"].as_str().expect("message");
        assert!(message.contains("no client you can see"), "{message}");
        assert!(!message.contains(&hidden.to_string()) && !message.contains(&other.email), "{message}");
    }
    let attached: Vec<(Uuid, String)> = sqlx::query_as("SELECT client_id, name FROM projects WHERE tenant_id = $1")
        .bind(admin.tenant_id)
        .fetch_all(&app.db)
        .await
        .expect("projects");
    assert_eq!(attached, [(mine, "P3".to_owned())], "nothing attached to the hidden client");

    // Each sees their own imports; admins see all.
    let import_id = id_of(&done);
    assert_eq!(app.get(&format!("/api/v1/imports/{import_id}"), &other).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/api/v1/imports/{import_id}/errors"), &other).await.status, StatusCode::NOT_FOUND);
    let error_id = errors[0]["id"].as_str().expect("error id");
    let patch = app.patch(&format!("/api/v1/import-errors/{error_id}"), &other, json!({ "resolved": true })).await;
    patch.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.get("/api/v1/imports?include_total=true", &other).await.body["total"], 0);
    assert_eq!(app.get("/api/v1/imports?include_total=true", &rep).await.body["total"], 1);
    assert_eq!(app.get(&format!("/api/v1/imports/{import_id}"), &admin).await.status, StatusCode::OK);
    let unresolved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM import_errors WHERE import_id = $1 AND resolved_at IS NULL")
            .bind(import_id)
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(unresolved, 2, "the other rep's PATCH changed nothing");
}

/// The plan of `sql` (binding `keys`) as the import job runs it: as crm_app, in the tenant's transaction.
async fn plan_as_crm_app(app: &TestApp, tenant: Uuid, sql: &str, keys: &[String]) -> String {
    let mut tx = crm_shared::db::begin_tenant(&app.db, crm_shared::TenantId(tenant)).await.expect("tenant tx");
    let plan: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {sql}")))
        .bind(keys)
        .fetch_one(&mut *tx)
        .await
        .expect("explain");
    tx.rollback().await.expect("rollback");
    plan.to_string()
}

#[tokio::test]
async fn duplicate_lookups_probe_the_email_index_under_row_level_security() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let other = app.tenant().await;
    // Enough leads that scanning the tenant would show, in two tenants.
    for tenant in [admin.tenant_id, other.tenant_id] {
        sqlx::query(
            "INSERT INTO leads (id, tenant_id, first_name, email) \
             SELECT gen_random_uuid(), $1, 'Lead', 'lead' || i || '@' || $1 || '.test' FROM generate_series(1, 30000) i",
        )
        .bind(tenant)
        .execute(&app.db)
        .await
        .expect("seed");
    }
    sqlx::query("ANALYZE leads").execute(&app.db).await.expect("analyze");
    let keys: Vec<String> = (1..=200).map(|i| format!("lead{i}@{}.test", admin.tenant_id)).collect();
    let plan = plan_as_crm_app(&app, admin.tenant_id, crm_shared::db::import_lookups::LEAD_EMAIL_LOOKUP, &keys).await;
    assert!(plan.contains("leads_email_key"), "the lookup uses the email index: {plan}");
    assert!(plan.contains("lower(email)"), "with the email in its index condition: {plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");

    // And it finds exactly the tenant's own leads, as crm_app.
    let mut tx = crm_shared::db::begin_tenant(&app.db, crm_shared::TenantId(admin.tenant_id)).await.expect("tx");
    let mut other_keys = keys.clone();
    other_keys.extend((1..=50).map(|i| format!("lead{i}@{}.test", other.tenant_id)));
    let found = crm_shared::db::import_lookups::existing_by_email(
        &mut tx,
        crm_shared::domain::access::Entity::Lead,
        &other_keys,
    )
    .await
    .expect("lookup");
    tx.rollback().await.expect("rollback");
    assert_eq!(found.len(), 200, "the other tenant's 50 are not found");
    let mut tx = crm_shared::db::begin_tenant(&app.db, crm_shared::TenantId(admin.tenant_id)).await.expect("tx");
    sqlx::query("SELECT set_config('app.tenant_id', '', true)").execute(&mut *tx).await.expect("unset");
    let none =
        crm_shared::db::import_lookups::existing_by_email(&mut tx, crm_shared::domain::access::Entity::Lead, &keys)
            .await
            .expect("lookup");
    assert!(none.is_empty(), "with no tenant set the views show nothing");
}
