//! The ten reports and the dashboard, end to end: a known dataset built through the API and imports (every
//! role, two teams, leads with past `created_at` and `converted_at`, clients, projects with values and dates,
//! interactions with follow-ups, a second tenant), each answer checked field by field against `model`, which
//! recounts the stored rows in the test, for admin, manager, sales and readonly, with and without date ranges
//! and `user_id`.

mod model;

use chrono::{DateTime, Duration, Utc};
use crm_tests::{Session, TestApp, import_file};
use model::{Days, Reader, World};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

pub struct Cast {
    pub admin: Session,
    pub manager_east: Session,
    pub manager_west: Session,
    pub sales_east: Session,
    pub sales_east_2: Session,
    pub sales_west: Session,
    pub readonly: Session,
    pub support: Session,
    /// The East team's id.
    pub east: Uuid,
}

pub async fn cast(app: &TestApp, admin: Session) -> Cast {
    let east = app.team(&admin, "East").await;
    let west = app.team(&admin, "West").await;
    Cast {
        manager_east: app.user(&admin, "manager", &[east]).await,
        manager_west: app.user(&admin, "manager", &[west]).await,
        sales_east: app.user(&admin, "sales", &[east]).await,
        sales_east_2: app.user(&admin, "sales", &[east]).await,
        sales_west: app.user(&admin, "sales", &[west]).await,
        readonly: app.user(&admin, "readonly", &[east]).await,
        support: app.user(&admin, "support", &[]).await,
        admin,
        east,
    }
}

pub async fn created(app: &TestApp, session: &Session, path: &str, body: Value) -> Uuid {
    let reply = app.post(path, session, body.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "POST {path} {body}: {}", reply.body);
    reply.id()
}

fn at(moment: DateTime<Utc>) -> String {
    moment.to_rfc3339()
}

/// Builds the dataset; returns the moment it was built around.
async fn build(app: &TestApp, cast: &Cast) -> DateTime<Utc> {
    let now = Utc::now();
    let days = |n: i64| Duration::days(n);
    let (admin, east, east_2, west) = (&cast.admin, &cast.sales_east, &cast.sales_east_2, &cast.sales_west);

    // Leads through the API, by several people, some assigned elsewhere.
    let lead = |first: &str, last: Option<&str>, status: &str, source: Option<&str>, assigned: Option<Uuid>| {
        // A lead created as converted gets converted_at = now from the API.
        json!({"first_name": first, "last_name": last, "status": status, "lead_source": source,
            "assigned_to_user_id": assigned})
    };
    let e1 = created(app, east, "/api/v1/leads", lead("Ann", Some("Ash"), "new", Some("Website"), None)).await;
    created(app, east, "/api/v1/leads", lead("Ben", None, "contacted", Some("Referral"), None)).await;
    created(app, east, "/api/v1/leads", lead("Cy", Some("Cole"), "converted", Some("Website"), None)).await;
    let doomed =
        created(app, east, "/api/v1/leads", lead("Del", Some("Gone"), "qualified", Some("Partner"), None)).await;
    let back = created(app, east, "/api/v1/leads", lead("Eve", Some("Back"), "new", Some("Partner"), None)).await;
    created(app, east_2, "/api/v1/leads", lead("Fay", Some("Fox"), "qualified", Some("Cold Call"), None)).await;
    created(app, east_2, "/api/v1/leads", lead("Gil", None, "lost", None, None)).await;
    created(app, admin, "/api/v1/leads", lead("Hal", Some("Hu"), "new", Some("Partner"), Some(west.user_id))).await;
    created(app, admin, "/api/v1/leads", lead("Ida", None, "converted", Some("Trade Show"), Some(east_2.user_id)))
        .await;
    created(app, admin, "/api/v1/leads", lead("Jo", Some("Jay"), "new", Some("Other"), None)).await;
    created(app, admin, "/api/v1/leads", lead("Kit", None, "contacted", None, Some(cast.readonly.user_id))).await;
    created(
        app,
        &cast.manager_east,
        "/api/v1/leads",
        lead("Lu", Some("Li"), "qualified", Some("Referral"), Some(east.user_id)),
    )
    .await;
    created(app, &cast.manager_west, "/api/v1/leads", lead("Mo", None, "new", Some("Website"), None)).await;
    assert_eq!(app.delete(&format!("/api/v1/leads/{doomed}"), east).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&format!("/api/v1/leads/{back}"), east).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.post(&format!("/api/v1/leads/{back}/restore"), east, json!({})).await.status, StatusCode::OK);
    let patched = app
        .patch(
            &format!("/api/v1/leads/{e1}"),
            admin,
            json!({"status": "contacted", "assigned_to_user_id": east_2.user_id}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);

    // Leads with history, imported: created over the last two years at hours that fall on different days in
    // New York and in UTC, some converted days later.
    let statuses = ["new", "contacted", "qualified", "lost", "converted", "converted"];
    let sources = ["Website", "Referral", "", "Cold Call", "Email Campaign", "Social Media", "Trade Show"];
    let owners = [
        east.email.as_str(),
        east_2.email.as_str(),
        west.email.as_str(),
        "",
        cast.manager_east.email.as_str(),
        cast.readonly.email.as_str(),
    ];
    let mut csv = String::from("first_name,last_name,email,status,lead_source,assigned_to,created_at,converted_at\n");
    for i in 0..48_i64 {
        let created_at = now - days(10 + i * 15) - Duration::hours(3 + (i % 5) * 5);
        let status = statuses[(i % 6) as usize];
        let converted_at = if status == "converted" && i % 4 != 1 {
            at(created_at + Duration::hours(30 + i * 7))
        } else {
            String::new()
        };
        csv.push_str(&format!(
            "Imp{i},Row{},imp{i}@example.com,{status},{},{},{},{converted_at}\n",
            i % 7,
            sources[(i % 7) as usize],
            owners[(i % 6) as usize],
            at(created_at)
        ));
    }
    let id = import_file(app, admin, "history.csv", csv.into_bytes(), &[("entity", "leads")]).await;
    let done = app.wait_import(admin, id, std::time::Duration::from_secs(60)).await;
    assert_eq!((done["status"].as_str(), done["created"].as_i64()), (Some("completed"), Some(48)), "{done}");
    let mut own = String::from("first_name,status,created_at\n");
    for i in 0..5_i64 {
        own.push_str(&format!("Own{i},{},{}\n", statuses[i as usize], at(now - days(40 + i * 61))));
    }
    let id = import_file(app, east, "mine.csv", own.into_bytes(), &[("entity", "leads")]).await;
    let done = app.wait_import(east, id, std::time::Duration::from_secs(60)).await;
    assert_eq!(done["created"].as_i64(), Some(5), "{done}");

    // Clients, through the API and imported with a past created_at.
    let client = |name: &str, status: &str, assigned: Option<Uuid>| json!({"name": name, "status": status, "assigned_to_user_id": assigned});
    let acme = created(app, admin, "/api/v1/clients", client("Acme", "active", Some(east.user_id))).await;
    let birch = created(app, admin, "/api/v1/clients", client("Birch", "inactive", Some(east_2.user_id))).await;
    let cedar = created(app, admin, "/api/v1/clients", client("Cedar", "prospect", Some(west.user_id))).await;
    let delta = created(app, admin, "/api/v1/clients", client("Delta", "new", None)).await;
    let elm = created(app, east, "/api/v1/clients", client("Elm", "active", None)).await;
    let gone = created(app, admin, "/api/v1/clients", client("Gone Co", "active", Some(east.user_id))).await;
    let mut csv = String::from("name,status,assigned_to,created_at\n");
    for (i, (name, status, owner)) in [
        ("Fjord", "active", east_2.email.as_str()),
        ("Grove", "inactive", east.email.as_str()),
        ("Harbor", "new", ""),
        ("Iris", "active", west.email.as_str()),
        ("Juniper", "prospect", cast.readonly.email.as_str()),
    ]
    .iter()
    .enumerate()
    {
        csv.push_str(&format!("{name},{status},{owner},{}\n", at(now - days(100 + 90 * i as i64))));
    }
    let id = import_file(app, admin, "clients.csv", csv.into_bytes(), &[("entity", "clients")]).await;
    let done = app.wait_import(admin, id, std::time::Duration::from_secs(60)).await;
    assert_eq!(done["created"].as_i64(), Some(5), "{done}");

    // Projects with values (cents), dates and every status, through the API and imported.
    let project = |client: Uuid,
                   name: &str,
                   status: &str,
                   value: Option<&str>,
                   dates: (Option<&str>, Option<&str>),
                   assigned: Option<Uuid>| {
        json!({"client_id": client, "name": name, "status": status, "value": value, "start_date": dates.0,
            "close_date": dates.1, "assigned_to_user_id": assigned})
    };
    created(
        app,
        admin,
        "/api/v1/projects",
        project(acme, "A1", "completed", Some("1200.50"), (Some("2025-01-10"), Some("2025-03-01")), Some(east.user_id)),
    )
    .await;
    created(
        app,
        admin,
        "/api/v1/projects",
        project(acme, "A2", "active", Some("800.25"), (Some("2025-06-01"), Some("2027-02-15")), Some(east.user_id)),
    )
    .await;
    created(
        app,
        admin,
        "/api/v1/projects",
        project(birch, "B1", "pending", Some("333.33"), (None, Some("2027-02-28")), Some(east_2.user_id)),
    )
    .await;
    created(
        app,
        admin,
        "/api/v1/projects",
        project(birch, "B2", "cancelled", Some("5000"), (None, None), Some(east_2.user_id)),
    )
    .await;
    created(
        app,
        admin,
        "/api/v1/projects",
        project(cedar, "C1", "completed", Some("2500"), (Some("2024-11-01"), Some("2025-02-14")), Some(west.user_id)),
    )
    .await;
    created(app, admin, "/api/v1/projects", project(delta, "D1", "active", None, (None, Some("2027-01-05")), None))
        .await;
    created(
        app,
        east,
        "/api/v1/projects",
        project(elm, "E1", "completed", Some("99.99"), (Some("2025-05-05"), None), None),
    )
    .await;
    let doomed = created(
        app,
        admin,
        "/api/v1/projects",
        project(gone, "G1", "active", Some("7777"), (None, None), Some(east.user_id)),
    )
    .await;
    assert_eq!(app.delete(&format!("/api/v1/projects/{doomed}"), admin).await.status, StatusCode::NO_CONTENT);
    let mut csv = String::from("client,name,status,value,start_date,close_date,assigned_to,created_at\n");
    let rows = [
        ("Fjord", "completed", "4100.10", "2025-02-01", "2025-04-20", east_2.email.as_str()),
        ("Fjord", "active", "150", "2025-09-01", "2026-12-30", east_2.email.as_str()),
        ("Grove", "pending", "640.40", "", "2027-03-10", east.email.as_str()),
        ("Iris", "completed", "300", "2025-03-03", "2025-03-30", west.email.as_str()),
        ("Iris", "cancelled", "120", "", "", west.email.as_str()),
        ("Acme", "completed", "", "2025-07-01", "2025-07-31", cast.manager_east.email.as_str()),
    ];
    for (i, (client, status, value, start, close, owner)) in rows.iter().enumerate() {
        csv.push_str(&format!(
            "{client},P{i},{status},{value},{start},{close},{owner},{}\n",
            at(now - days(60 + 70 * i as i64))
        ));
    }
    let id = import_file(app, admin, "projects.csv", csv.into_bytes(), &[("entity", "projects")]).await;
    let done = app.wait_import(admin, id, std::time::Duration::from_secs(60)).await;
    assert_eq!(done["created"].as_i64(), Some(6), "{done}");

    // Interactions: past and future contacts, follow-ups overdue, due today and later, some completed.
    let interaction = |kind: &str,
                       contact: DateTime<Utc>,
                       lead: Option<Uuid>,
                       client: Option<Uuid>,
                       user: Uuid,
                       follow_up: Option<DateTime<Utc>>,
                       completed: bool| {
        json!({"type": kind, "contact_date": at(contact), "lead_id": lead, "client_id": client, "user_id": user,
            "notes": format!("about {kind}"), "follow_up_at": follow_up.map(at),
            "completed_at": completed.then(|| at(contact))})
    };
    let hours = Duration::hours;
    created(
        app,
        admin,
        "/api/v1/interactions",
        interaction("call", now - days(40) - hours(12), None, Some(acme), east.user_id, Some(now - days(1)), false),
    )
    .await;
    created(
        app,
        admin,
        "/api/v1/interactions",
        interaction("meeting", now - days(5) - hours(12), None, Some(acme), east_2.user_id, None, true),
    )
    .await;
    created(
        app,
        admin,
        "/api/v1/interactions",
        interaction(
            "email",
            now - days(61) - hours(12),
            None,
            Some(birch),
            east_2.user_id,
            Some(now + hours(2)),
            false,
        ),
    )
    .await;
    created(
        app,
        admin,
        "/api/v1/interactions",
        interaction("call", now + days(2), None, Some(cedar), west.user_id, None, false),
    )
    .await;
    created(
        app,
        admin,
        "/api/v1/interactions",
        interaction("note", now - days(200) - hours(12), None, Some(elm), admin.user_id, Some(now - days(3)), false),
    )
    .await;
    created(
        app,
        east,
        "/api/v1/interactions",
        interaction("follow_up", now - days(12) - hours(12), Some(e1), None, east.user_id, Some(now + days(3)), false),
    )
    .await;
    created(
        app,
        admin,
        "/api/v1/interactions",
        interaction("call", now + days(20), Some(e1), None, west.user_id, Some(now + days(25)), false),
    )
    .await;
    created(
        app,
        admin,
        "/api/v1/interactions",
        interaction(
            "meeting",
            now - days(33) - hours(12),
            Some(back),
            None,
            cast.manager_east.user_id,
            Some(now + Duration::minutes(1)),
            false,
        ),
    )
    .await;
    let removed = created(
        app,
        admin,
        "/api/v1/interactions",
        interaction("call", now - days(1), None, Some(delta), east.user_id, Some(now - days(1)), false),
    )
    .await;
    assert_eq!(app.delete(&format!("/api/v1/interactions/{removed}"), admin).await.status, StatusCode::NO_CONTENT);
    created(
        app,
        east_2,
        "/api/v1/interactions",
        interaction("email", now + hours(5), None, Some(birch), east_2.user_id, Some(now - hours(2)), false),
    )
    .await;
    created(
        app,
        admin,
        "/api/v1/interactions",
        interaction("call", now - days(2), None, Some(delta), cast.readonly.user_id, Some(now + days(6)), true),
    )
    .await;
    now
}

/// A report's `data`, asserting 200.
async fn report(app: &TestApp, session: &Session, name: &str, query: &str) -> Value {
    let reply = app.get(&format!("/api/v1/reports/{name}?{query}"), session).await;
    assert_eq!(reply.status, StatusCode::OK, "{name}?{query}: {}", reply.body);
    reply.data().clone()
}

fn join(parts: &[&str]) -> String {
    parts.iter().filter(|part| !part.is_empty()).copied().collect::<Vec<_>>().join("&")
}

/// Every report of `session` (extra query `who`, e.g. `user_id=...`) against the model for `reader`.
async fn check_every_report(
    app: &TestApp,
    world: &World,
    session: &Session,
    who: &str,
    reader: Reader,
    managerial: bool,
) {
    let ranges = [
        Days::all(),
        // Across month ends (days, whole months, days) and within one month.
        Days::between("2025-03-14", "2026-02-09"),
        Days::between("2025-06-03", "2025-06-20"),
        Days { start: Some((Utc::now() - Duration::days(20)).date_naive()), end: None },
        Days { start: None, end: Some("2025-12-31".parse().expect("day")) },
    ];
    for days in ranges {
        let query = join(&[who, &days.query()]);
        let context = format!("{} {query}", session.email);
        assert_eq!(report(app, session, "pipeline", &query).await, world.pipeline(reader, days), "pipeline {context}");
        assert_eq!(
            report(app, session, "lead-source", &query).await,
            world.lead_source(reader, days),
            "lead-source {context}"
        );
        assert_eq!(
            report(app, session, "conversion-rate", &query).await,
            world.conversion_rate(reader, days),
            "conversion {context}"
        );
        assert_eq!(
            report(app, session, "revenue-by-client", &query).await,
            world.revenue_by_client(reader, days, 25),
            "revenue-by-client {context}"
        );
        assert_eq!(
            report(app, session, "project-performance", &query).await,
            world.project_performance(reader, days),
            "project-performance {context}"
        );
        assert_eq!(
            report(app, session, "revenue-forecast", &query).await,
            world.revenue_forecast(reader, days),
            "revenue-forecast {context}"
        );
        if managerial {
            assert_eq!(
                report(app, session, "user-activity", &query).await,
                world.user_activity(reader, days),
                "user-activity {context}"
            );
        }
        if !days.query().is_empty() {
            assert_eq!(
                report(app, session, "client-retention", &query).await,
                world.client_retention(reader, days),
                "client-retention {context}"
            );
        }
    }
    let now = Utc::now();
    assert_eq!(
        report(app, session, "client-retention", who).await,
        world.client_retention(reader, world.last_30_days(now))
    );
    assert_eq!(
        report(app, session, "follow-ups", who).await,
        world.follow_ups(reader, now, 30),
        "follow-ups {}",
        session.email
    );
    assert_eq!(
        report(app, session, "follow-ups", &join(&[who, "inactive_days=7"])).await,
        world.follow_ups(reader, now, 7),
        "follow-ups 7 {}",
        session.email
    );
    assert_eq!(
        report(app, session, "upcoming-tasks", who).await,
        world.upcoming_tasks(reader, now, 7),
        "upcoming {}",
        session.email
    );
    assert_eq!(
        report(app, session, "upcoming-tasks", &join(&[who, "days_ahead=30"])).await,
        world.upcoming_tasks(reader, now, 30),
        "upcoming 30 {}",
        session.email
    );
    assert_eq!(
        report(app, session, "revenue-by-client", &join(&[who, "limit=2"])).await,
        world.revenue_by_client(reader, Days::all(), 2),
        "revenue-by-client limit {}",
        session.email
    );
}

#[tokio::test]
async fn every_report_and_dashboard_equals_a_recount_for_each_role_range_and_user() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;
    let cast = cast(&app, app.tenant_in("US", "America/New_York").await).await;
    // Another tenant with records of its own, which never count for the first.
    let other = app.tenant().await;
    for name in ["Other1", "Other2"] {
        created(
            &app,
            &other,
            "/api/v1/leads",
            json!({"first_name": name, "status": "converted", "lead_source": "Website"}),
        )
        .await;
    }
    let other_client = created(&app, &other, "/api/v1/clients", json!({"name": "Acme", "status": "active"})).await;
    created(
        &app,
        &other,
        "/api/v1/projects",
        json!({"client_id": other_client, "name": "X", "status": "completed", "value": 1e6}),
    )
    .await;
    created(
        &app,
        &other,
        "/api/v1/interactions",
        json!({"type": "call", "contact_date": at(Utc::now() + Duration::days(1)), "client_id": other_client}),
    )
    .await;

    build(&app, &cast).await;
    let world = World::load(&app.db, cast.admin.tenant_id).await;
    assert_eq!(world.lead_count(), 13 - 1 + 48 + 5, "the dataset as built");

    let tenant = Reader::Tenant;
    check_every_report(&app, &world, &cast.admin, "", tenant, true).await;
    check_every_report(&app, &world, &cast.manager_east, "", Reader::Manager(cast.manager_east.user_id), true).await;
    check_every_report(&app, &world, &cast.sales_east, "", Reader::Own(cast.sales_east.user_id), false).await;
    check_every_report(&app, &world, &cast.readonly, "", Reader::Own(cast.readonly.user_id), false).await;
    // user_id: an admin on anyone, a manager on a member of their team (or themselves).
    let on = |user: &Session| format!("user_id={}", user.user_id);
    check_every_report(&app, &world, &cast.admin, &on(&cast.sales_west), Reader::Own(cast.sales_west.user_id), true)
        .await;
    check_every_report(
        &app,
        &world,
        &cast.manager_east,
        &on(&cast.sales_east_2),
        Reader::Own(cast.sales_east_2.user_id),
        true,
    )
    .await;
    check_every_report(
        &app,
        &world,
        &cast.manager_east,
        &on(&cast.manager_east),
        Reader::Own(cast.manager_east.user_id),
        true,
    )
    .await;

    // A manager of both teams sees their union (all-time revenue by client then adds up the projects).
    let mut members = World::load(&app.db, cast.admin.tenant_id).await.members_of(cast.east);
    members.push(cast.manager_west.user_id);
    let path = format!("/api/v1/teams/{}/members", cast.east);
    let reply = app.put(&path, &cast.admin, json!({ "user_ids": members })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let world = World::load(&app.db, cast.admin.tenant_id).await;
    check_every_report(&app, &world, &cast.manager_west, "", Reader::Manager(cast.manager_west.user_id), true).await;

    // The dashboard, per role, against the same recount.
    for (session, reader, per_user) in [
        (&cast.admin, tenant, true),
        (&cast.manager_east, Reader::Manager(cast.manager_east.user_id), true),
        (&cast.sales_east, Reader::Own(cast.sales_east.user_id), false),
        (&cast.readonly, Reader::Own(cast.readonly.user_id), false),
    ] {
        let reply = app.get("/api/v1/dashboard/metrics", session).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.data(), &world.dashboard(reader, Utc::now(), per_user), "dashboard of {}", session.email);
    }

    // The other tenant sees only its own.
    let theirs = report(&app, &other, "pipeline", "").await;
    assert_eq!(theirs["leads"][4], json!({"status": "converted", "count": 2}), "{theirs}");
    assert_eq!(theirs["projects"][2], json!({"status": "completed", "count": 1, "total_value": 1e6}), "{theirs}");
    assert_eq!(report(&app, &other, "upcoming-tasks", "").await["tasks"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn reports_refuse_support_wrong_users_other_tenants_and_bad_parameters() {
    let app = TestApp::spawn().await;
    let cast = cast(&app, app.tenant().await).await;
    let other = app.tenant().await;
    let names = [
        "pipeline",
        "lead-source",
        "conversion-rate",
        "revenue-by-client",
        "user-activity",
        "follow-ups",
        "client-retention",
        "project-performance",
        "upcoming-tasks",
        "revenue-forecast",
    ];
    for name in names {
        let path = format!("/api/v1/reports/{name}");
        app.get(&path, &cast.support).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
        // Sales and readonly may not ask about another user, nor about themselves by id.
        for session in [&cast.sales_east, &cast.readonly] {
            app.get(&format!("{path}?user_id={}", cast.sales_east_2.user_id), session)
                .await
                .assert_error(StatusCode::FORBIDDEN, "forbidden");
        }
        // A manager only on their own teams.
        app.get(&format!("{path}?user_id={}", cast.sales_west.user_id), &cast.manager_east)
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden");
        // Another tenant's user is no user here.
        let reply = app.get(&format!("{path}?user_id={}", other.user_id), &cast.admin).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(reply.field_error("user_id").is_some(), "{}", reply.body);
        // Without a token: 401.
        let anonymous = app.request(reqwest::Method::GET, &path, None, None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{}", anonymous.body);
    }
    for session in [&cast.sales_east, &cast.readonly] {
        app.get("/api/v1/reports/user-activity", session).await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    }
    for (query, field) in [
        ("start_date=2025-13-01", "start_date"),
        ("start_date=yesterday", "start_date"),
        ("end_date=2025-02-30", "end_date"),
        ("start_date=2025-05-02&end_date=2025-05-01", "end_date"),
    ] {
        let reply = app.get(&format!("/api/v1/reports/pipeline?{query}"), &cast.admin).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(reply.field_error(field).is_some(), "{query}: {}", reply.body);
    }
    for (path, field) in [
        ("revenue-by-client?limit=0", "limit"),
        ("revenue-by-client?limit=101", "limit"),
        ("follow-ups?inactive_days=0", "inactive_days"),
        ("upcoming-tasks?days_ahead=91", "days_ahead"),
    ] {
        let reply = app.get(&format!("/api/v1/reports/{path}"), &cast.admin).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(reply.field_error(field).is_some(), "{path}: {}", reply.body);
    }
    let reply = app.get("/api/v1/reports/profit", &cast.admin).await;
    reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(reply.body["error"].as_str().is_some_and(|text| text.contains("revenue-forecast")), "{}", reply.body);
    // Refusals wrote nothing: the tenant has no records at all.
    for table in ["leads", "clients", "projects", "interactions"] {
        assert_eq!(app.count_rows(table, Some(cast.admin.tenant_id)).await, 0, "{table}");
    }
}
