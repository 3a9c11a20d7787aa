//! The demo seeder fills a tenant with every kind of record and users of every role.

use crm_shared::seed::{SeedPlan, seed_demo};
use crm_tests::TestApp;
use reqwest::StatusCode;

#[tokio::test]
async fn the_demo_tenant_has_every_role_and_realistic_records() {
    let app = TestApp::spawn().await;
    let email = format!("demo-{}@demo.test", uuid::Uuid::new_v4().simple());
    let plan = SeedPlan {
        tenant_name: "Demo".into(),
        admin_email: email.clone(),
        password: "demo-password".into(),
        leads: 2_000,
    };
    let report = seed_demo(&app.db, &plan).await.expect("seed");
    let tenant = Some(report.tenant_id.as_uuid());
    assert_eq!(app.count_rows("leads", tenant).await, 2_000);
    assert_eq!(app.count_rows("clients", tenant).await as u64, report.clients);
    assert_eq!(app.count_rows("projects", tenant).await as u64, report.projects);
    assert_eq!(app.count_rows("interactions", tenant).await as u64, report.interactions);
    assert_eq!(app.count_rows("tickets", tenant).await as u64, report.tickets);
    let roles: Vec<String> = sqlx::query_scalar("SELECT DISTINCT role FROM users WHERE tenant_id = $1 ORDER BY role")
        .bind(report.tenant_id)
        .fetch_all(&app.db)
        .await
        .expect("roles");
    assert_eq!(roles, ["admin", "manager", "readonly", "sales", "support"]);

    let admin = app.login(&email, "demo-password").await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.body);
    let token = admin.data()["token"].as_str().expect("token").to_owned();
    let all = app.request(reqwest::Method::GET, "/api/v1/leads?include_total=true", Some(&token), None).await;
    assert_eq!(all.body["total"], 2_000);

    let rep =
        report.users.iter().find(|user| user.role == crm_shared::domain::enums::Role::Sales).expect("a sales rep");
    let rep_login = app.login(&rep.email, "demo-password").await;
    let rep_token = rep_login.data()["token"].as_str().expect("token").to_owned();
    let own = app.request(reqwest::Method::GET, "/api/v1/leads?include_total=true", Some(&rep_token), None).await;
    let own_total = own.body["total"].as_i64().expect("total");
    assert!(own_total > 0 && own_total < 2_000, "a rep sees some, not all: {own_total}");
}
