//! The rollups behind the reports stay equal to a recount after a random mix of writes: leads and projects
//! created, updated (status, owner, conversion, value, dates), soft deleted, restored and imported (leads
//! upserted), clients reassigned, interactions logged, moved and deleted and team members changed, with the deltas pending and after
//! they are folded in.

use crate::reports::created;
use chrono::{Duration, Utc};
use crm_shared::TenantId;
use crm_shared::db::rollups;
use crm_tests::{Session, TestApp, import_file};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// A small deterministic generator (xorshift), so a failure can be replayed from its seed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % sides as u64) as usize
    }
}

const STATUSES: [&str; 5] = ["new", "contacted", "qualified", "lost", "converted"];
const SOURCES: [Option<&str>; 4] = [Some("Website"), Some("Referral"), None, Some("Partner")];

async fn assert_rollup_matches(app: &TestApp, tenant: Uuid, moment: &str) {
    let mut conn = app.db.acquire().await.expect("connection");
    let differences = rollups::lead_differences_from_recount(&mut conn, TenantId(tenant)).await.expect("compare");
    assert!(differences.is_empty(), "{moment}: the lead rollup differs from a recount:\n{}", differences.join("\n"));
    let differences = rollups::activity_differences_from_recount(&mut conn, TenantId(tenant)).await.expect("compare");
    assert!(
        differences.is_empty(),
        "{moment}: the activity rollup differs from a recount:\n{}",
        differences.join("\n")
    );
    let differences = rollups::project_differences_from_recount(&mut conn, TenantId(tenant)).await.expect("compare");
    assert!(differences.is_empty(), "{moment}: the project rollup differs from a recount:\n{}", differences.join("\n"));
    let differences =
        rollups::client_revenue_differences_from_recount(&mut conn, TenantId(tenant)).await.expect("compare");
    assert!(
        differences.is_empty(),
        "{moment}: the revenue by client differs from a recount:\n{}",
        differences.join("\n")
    );
}

/// New members for one of `teams`: any of the admin and the reps (revenue by client is kept per team).
async fn team_step(app: &TestApp, admin: &Session, reps: &[Session; 2], teams: &[Uuid; 2], dice: &mut Dice) {
    let people = [admin.user_id, reps[0].user_id, reps[1].user_id];
    let members: Vec<Uuid> = people.into_iter().filter(|_| dice.roll(2) == 0).collect();
    let team = teams[dice.roll(2)];
    let reply = app.put(&format!("/api/v1/teams/{team}/members"), admin, json!({ "user_ids": members })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

/// A random write to clients or interactions (the activity rollup counts them per user).
async fn activity_step(
    app: &TestApp,
    admin: &Session,
    reps: &[Session; 2],
    clients: &[Uuid],
    dice: &mut Dice,
    interactions: &mut Vec<Uuid>,
) {
    let person = |dice: &mut Dice| match dice.roll(3) {
        0 => admin.user_id,
        n => reps[n - 1].user_id,
    };
    let moment = |dice: &mut Dice| (Utc::now() + Duration::hours(dice.roll(24 * 400) as i64 - 24 * 300)).to_rfc3339();
    match dice.roll(5) {
        0 | 1 => {
            let body = json!({"type": "call", "contact_date": moment(dice), "client_id": clients[dice.roll(clients.len())],
                "user_id": person(dice)});
            interactions.push(created(app, admin, "/api/v1/interactions", body).await);
        }
        2 if !interactions.is_empty() => {
            let interaction = interactions[dice.roll(interactions.len())];
            let body = json!({"user_id": person(dice), "contact_date": moment(dice)});
            let reply = app.patch(&format!("/api/v1/interactions/{interaction}"), admin, body).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        }
        3 if !interactions.is_empty() => {
            let interaction = interactions.swap_remove(dice.roll(interactions.len()));
            assert_eq!(
                app.delete(&format!("/api/v1/interactions/{interaction}"), admin).await.status,
                StatusCode::NO_CONTENT
            );
        }
        _ => {
            let client = clients[dice.roll(clients.len())];
            let owner = if dice.roll(3) == 0 { Value::Null } else { json!(person(dice)) };
            let reply =
                app.patch(&format!("/api/v1/clients/{client}"), admin, json!({"assigned_to_user_id": owner})).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        }
    }
}

const PROJECT_STATUSES: [&str; 4] = ["active", "pending", "completed", "cancelled"];

/// A random project write: create, change, delete, restore or import.
async fn project_step(
    app: &TestApp,
    admin: &Session,
    reps: &[Session; 2],
    clients: &[Uuid],
    dice: &mut Dice,
    projects: &mut Vec<Uuid>,
    trash: &mut Vec<Uuid>,
) {
    let day = |dice: &mut Dice| {
        let offset = dice.roll(900) as i64 - 450;
        if dice.roll(4) == 0 { Value::Null } else { json!((Utc::now() + Duration::days(offset)).date_naive()) }
    };
    let value = |dice: &mut Dice| {
        if dice.roll(4) == 0 { Value::Null } else { json!(format!("{}.{:02}", dice.roll(100_000), dice.roll(100))) }
    };
    let owner = |dice: &mut Dice| match dice.roll(3) {
        0 => Value::Null,
        n => json!(reps[n - 1].user_id),
    };
    match dice.roll(6) {
        0 | 1 => {
            let body = json!({"client_id": clients[dice.roll(clients.len())], "name": "P", "status": PROJECT_STATUSES[dice.roll(4)],
                "value": value(dice), "start_date": day(dice), "close_date": day(dice), "assigned_to_user_id": owner(dice)});
            let reply = app.post("/api/v1/projects", admin, body.clone()).await;
            // A close date before the start date is refused (422), and nothing is written.
            if reply.status == StatusCode::CREATED {
                projects.push(reply.id());
            } else {
                assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.body);
            }
        }
        2 if !projects.is_empty() => {
            let project = projects[dice.roll(projects.len())];
            let body = match dice.roll(4) {
                0 => json!({"status": PROJECT_STATUSES[dice.roll(4)]}),
                1 => json!({"value": value(dice), "assigned_to_user_id": owner(dice)}),
                2 => json!({"close_date": day(dice), "start_date": day(dice)}),
                _ => json!({"status": PROJECT_STATUSES[dice.roll(4)], "close_date": day(dice)}),
            };
            let reply = app.patch(&format!("/api/v1/projects/{project}"), admin, body.clone()).await;
            assert!(
                reply.status == StatusCode::OK || reply.status == StatusCode::UNPROCESSABLE_ENTITY,
                "{body}: {}",
                reply.body
            );
        }
        3 if !projects.is_empty() => {
            let project = projects.swap_remove(dice.roll(projects.len()));
            assert_eq!(app.delete(&format!("/api/v1/projects/{project}"), admin).await.status, StatusCode::NO_CONTENT);
            trash.push(project);
        }
        4 if !trash.is_empty() => {
            let project = trash.swap_remove(dice.roll(trash.len()));
            let reply = app.post(&format!("/api/v1/projects/{project}/restore"), admin, json!({})).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            projects.push(project);
        }
        _ => {
            let mut csv = String::from("client,name,status,value,start_date,close_date,created_at\n");
            for row in 0..(3 + dice.roll(10)) {
                let text = |value: Value| value.as_str().map(str::to_owned).unwrap_or_default();
                csv.push_str(&format!(
                    "Client{},Imported{row},{},{},{},{},{}\n",
                    dice.roll(clients.len()),
                    PROJECT_STATUSES[dice.roll(4)],
                    text(value(dice)),
                    text(day(dice)),
                    text(day(dice)),
                    (Utc::now() - Duration::days(dice.roll(700) as i64)).to_rfc3339()
                ));
            }
            let id = import_file(app, admin, "projects.csv", csv.into_bytes(), &[("entity", "projects")]).await;
            let done = app.wait_import(admin, id, std::time::Duration::from_secs(60)).await;
            assert!(matches!(done["status"].as_str(), Some("completed" | "completed_with_errors")), "{done}");
        }
    }
}

#[tokio::test]
async fn the_rollups_equal_a_recount_after_a_random_mix_of_writes() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant_in("US", "America/New_York").await;
    let reps = [app.user(&admin, "sales", &[]).await, app.user(&admin, "sales", &[]).await];
    let seed = Utc::now().timestamp_micros() as u64 | 1;
    let mut dice = Dice(seed);
    println!("seed {seed}");
    let mut live: Vec<Uuid> = Vec::new();
    let mut deleted: Vec<Uuid> = Vec::new();
    let mut clients = Vec::new();
    for index in 0..4 {
        clients.push(
            created(&app, &admin, "/api/v1/clients", json!({"name": format!("Client{index}"), "status": "active"}))
                .await,
        );
    }
    let (mut projects, mut trash, mut interactions) = (Vec::new(), Vec::new(), Vec::new());
    let teams = [
        created(&app, &admin, "/api/v1/teams", json!({"name": "East"})).await,
        created(&app, &admin, "/api/v1/teams", json!({"name": "West"})).await,
    ];

    for step in 0..240 {
        if dice.roll(15) == 0 {
            team_step(&app, &admin, &reps, &teams, &mut dice).await;
            continue;
        }
        if dice.roll(5) == 0 {
            activity_step(&app, &admin, &reps, &clients, &mut dice, &mut interactions).await;
            continue;
        }
        if dice.roll(4) == 0 {
            project_step(&app, &admin, &reps, &clients, &mut dice, &mut projects, &mut trash).await;
            continue;
        }
        let owner = match dice.roll(3) {
            0 => Value::Null,
            n => json!(reps[n - 1].user_id),
        };
        match dice.roll(10) {
            0..=3 => {
                let body = json!({"first_name": format!("L{step}"), "email": format!("l{step}@example.com"),
                    "status": STATUSES[dice.roll(5)], "lead_source": SOURCES[dice.roll(4)], "assigned_to_user_id": owner});
                let actor = if dice.roll(2) == 0 { &admin } else { &reps[0] };
                let body = if actor.user_id == admin.user_id {
                    body
                } else {
                    json!({"first_name": body["first_name"], "status": body["status"]})
                };
                live.push(created(&app, actor, "/api/v1/leads", body).await);
            }
            4..=6 if !live.is_empty() => {
                let lead = live[dice.roll(live.len())];
                let body = match dice.roll(4) {
                    0 => json!({"status": STATUSES[dice.roll(5)]}),
                    1 => json!({"assigned_to_user_id": owner}),
                    2 => json!({"converted_at": (Utc::now() - Duration::days(dice.roll(400) as i64)).to_rfc3339()}),
                    _ => {
                        json!({"status": STATUSES[dice.roll(5)], "lead_source": SOURCES[dice.roll(4)], "converted_at": null})
                    }
                };
                let reply = app.patch(&format!("/api/v1/leads/{lead}"), &admin, body.clone()).await;
                assert_eq!(reply.status, StatusCode::OK, "{body}: {}", reply.body);
            }
            7 if !live.is_empty() => {
                let lead = live.swap_remove(dice.roll(live.len()));
                assert_eq!(app.delete(&format!("/api/v1/leads/{lead}"), &admin).await.status, StatusCode::NO_CONTENT);
                deleted.push(lead);
            }
            8 if !deleted.is_empty() => {
                let lead = deleted.swap_remove(dice.roll(deleted.len()));
                let reply = app.post(&format!("/api/v1/leads/{lead}/restore"), &admin, json!({})).await;
                if reply.status == StatusCode::CONFLICT {
                    // An import made a new lead with its email meanwhile: it stays in the trash, and says why.
                    assert_eq!(reply.field_error("email"), Some("a lead with this email already exists"));
                    deleted.push(lead);
                } else {
                    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
                    live.push(lead);
                }
            }
            _ => {
                // An upserting import: updates leads it finds by email, creates the rest with a past created_at.
                let mut csv = String::from("first_name,email,status,lead_source,assigned_to,created_at,converted_at\n");
                for row in 0..(5 + dice.roll(20)) {
                    // Emails of leads made so far (upserted) or never used; never one a later step creates.
                    let email = format!("l{}@example.com", dice.roll(step + 1));
                    let created_at =
                        Utc::now() - Duration::days(dice.roll(900) as i64) - Duration::hours(dice.roll(24) as i64);
                    let converted_at = if dice.roll(2) == 0 {
                        (created_at + Duration::days(dice.roll(60) as i64)).to_rfc3339()
                    } else {
                        String::new()
                    };
                    let assigned = match dice.roll(3) {
                        0 => String::new(),
                        n => reps[n - 1].email.clone(),
                    };
                    csv.push_str(&format!(
                        "I{step}x{row},{email},{},{},{assigned},{},{converted_at}\n",
                        STATUSES[dice.roll(5)],
                        SOURCES[dice.roll(4)].unwrap_or(""),
                        created_at.to_rfc3339(),
                    ));
                }
                let id =
                    import_file(&app, &admin, "mix.csv", csv.into_bytes(), &[("entity", "leads"), ("mode", "upsert")])
                        .await;
                let done = app.wait_import(&admin, id, std::time::Duration::from_secs(60)).await;
                assert!(matches!(done["status"].as_str(), Some("completed" | "completed_with_errors")), "{done}");
                live = sqlx::query_scalar("SELECT id FROM leads WHERE tenant_id = $1 AND deleted_at IS NULL")
                    .bind(admin.tenant_id)
                    .fetch_all(&app.db)
                    .await
                    .expect("live leads");
            }
        }
        if step % 40 == 39 {
            assert_rollup_matches(&app, admin.tenant_id, &format!("after step {step}")).await;
        }
    }
    assert_rollup_matches(&app, admin.tenant_id, "with deltas pending").await;
    rollups::fold_deltas(&app.db).await.expect("fold");
    assert_eq!(rollups::pending_deltas(&app.db).await.expect("pending"), 0, "everything folded");
    assert_rollup_matches(&app, admin.tenant_id, "after folding").await;

    // And the reports read the same: the pipeline's counts are the live leads per status.
    let reply = app.get("/api/v1/reports/pipeline", &admin).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    for (index, status) in STATUSES.iter().enumerate() {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM leads WHERE tenant_id = $1 AND deleted_at IS NULL AND status = $2",
        )
        .bind(admin.tenant_id)
        .bind(status)
        .fetch_one(&app.db)
        .await
        .expect("count");
        assert_eq!(reply.data()["leads"][index], json!({"status": status, "count": count}), "{status}");
    }
}
