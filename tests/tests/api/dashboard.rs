//! The dashboard's cache (hit, miss, invalidation by every kind of write, Redis down) and days in the tenant's
//! time zone (the same instants fall on different days in New York and Tokyo).

use crate::reports::{cast, created};
use chrono::{Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use crm_tests::{PrivateRedis, Session, TestApp, fresh_database, import_file};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The dashboard, its `X-Cache`, asserting 200 and the cache policy header.
async fn dashboard(app: &TestApp, session: &Session) -> (Value, String) {
    let reply = app.get("/api/v1/dashboard/metrics", session).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let header =
        |name: &str| reply.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("cache-control"), "private, max-age=60");
    (reply.data().clone(), header("x-cache"))
}

#[tokio::test]
async fn the_dashboard_is_cached_per_scope_and_every_write_drops_it_at_once() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;
    let cast = cast(&app, app.tenant().await).await;
    let rep = &cast.sales_east;
    created(&app, rep, "/api/v1/leads", json!({"first_name": "First", "status": "new"})).await;

    let (first, cache) = dashboard(&app, &cast.admin).await;
    assert_eq!((first["total_leads"].as_i64(), cache.as_str()), (Some(1), "miss"));
    let (again, cache) = dashboard(&app, &cast.admin).await;
    assert_eq!((&again, cache.as_str()), (&first, "hit"));
    // Another scope has its own entry: the rep's is computed, not the admin's served.
    let (own, cache) = dashboard(&app, rep).await;
    assert_eq!((own["per_user"].is_null(), cache.as_str()), (true, "miss"), "{own}");
    let (_, cache) = dashboard(&app, &cast.sales_east_2).await;
    assert_eq!(cache, "miss", "one rep's entry is not another's");

    // Each write is seen by the very next read, whoever reads.
    let lead = created(&app, rep, "/api/v1/leads", json!({"first_name": "Second", "status": "new"})).await;
    let (after, cache) = dashboard(&app, &cast.admin).await;
    assert_eq!((after["total_leads"].as_i64(), cache.as_str()), (Some(2), "miss"));
    let (mine, _) = dashboard(&app, rep).await;
    assert_eq!(mine["total_leads"].as_i64(), Some(2));

    let reply = app.patch(&format!("/api/v1/leads/{lead}"), rep, json!({"status": "converted"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let (after, cache) = dashboard(&app, &cast.admin).await;
    assert_eq!(
        (after["in_pipeline"].as_i64(), after["pipeline_by_stage"][4]["count"].as_i64(), cache.as_str()),
        (Some(1), Some(1), "miss")
    );

    assert_eq!(app.delete(&format!("/api/v1/leads/{lead}"), rep).await.status, StatusCode::NO_CONTENT);
    let (after, _) = dashboard(&app, &cast.admin).await;
    assert_eq!(after["total_leads"].as_i64(), Some(1));
    assert_eq!(app.post(&format!("/api/v1/leads/{lead}/restore"), rep, json!({})).await.status, StatusCode::OK);
    let (after, _) = dashboard(&app, &cast.admin).await;
    assert_eq!(after["total_leads"].as_i64(), Some(2));

    // A follow-up due: an interaction counts too.
    let (before, _) = dashboard(&app, &cast.admin).await;
    assert_eq!(before["tasks_due"]["overdue"].as_i64(), Some(0));
    let soon = (Utc::now() - Duration::hours(1)).to_rfc3339();
    created(
        &app,
        rep,
        "/api/v1/interactions",
        json!({"type": "call", "contact_date": soon, "lead_id": lead, "follow_up_at": soon}),
    )
    .await;
    let (after, _) = dashboard(&app, &cast.admin).await;
    assert_eq!(after["tasks_due"]["overdue"].as_i64(), Some(1));

    // An import by the rep: the admin's cached dashboard is dropped as soon as rows land.
    let (_, cache) = dashboard(&app, &cast.admin).await;
    assert_eq!(cache, "hit");
    let csv = "first_name,status\nImp1,new\nImp2,qualified\nImp3,converted\n";
    let id = import_file(&app, rep, "leads.csv", csv.as_bytes().to_vec(), &[("entity", "leads")]).await;
    app.wait_import(rep, id, std::time::Duration::from_secs(60)).await;
    let (after, cache) = dashboard(&app, &cast.admin).await;
    assert_eq!((after["total_leads"].as_i64(), cache.as_str()), (Some(5), "miss"));

    // A change of team changes what a manager sees.
    let (manager, _) = dashboard(&app, &cast.manager_west).await;
    assert_eq!(manager["total_leads"].as_i64(), Some(0));
    let west_team: uuid::Uuid = sqlx::query_scalar("SELECT team_id FROM user_teams WHERE user_id = $1")
        .bind(cast.manager_west.user_id)
        .fetch_one(&app.db)
        .await
        .expect("the west team");
    let reply = app
        .put(
            &format!("/api/v1/teams/{west_team}/members"),
            &cast.admin,
            json!({"user_ids": [cast.manager_west.user_id, rep.user_id]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let (manager, cache) = dashboard(&app, &cast.manager_west).await;
    assert_eq!((manager["total_leads"].as_i64(), cache.as_str()), (Some(5), "miss"));
}

#[tokio::test]
async fn the_dashboard_answers_from_postgres_when_redis_is_down() {
    let redis = PrivateRedis::start().await;
    let app = TestApp::spawn_with(fresh_database().await, redis.url.clone()).await;
    let admin = app.tenant().await;
    created(&app, &admin, "/api/v1/leads", json!({"first_name": "Kept", "status": "new"})).await;
    let (_, cache) = dashboard(&app, &admin).await;
    assert_eq!(cache, "miss");
    let (_, cache) = dashboard(&app, &admin).await;
    assert_eq!(cache, "hit");

    drop(redis);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let (figures, cache) = dashboard(&app, &admin).await;
    assert_eq!((figures["total_leads"].as_i64(), cache.as_str()), (Some(1), "miss"));
    // A write without Redis still lands, and the next read counts it.
    created(&app, &admin, "/api/v1/leads", json!({"first_name": "Also", "status": "new"})).await;
    let (figures, cache) = dashboard(&app, &admin).await;
    assert_eq!((figures["total_leads"].as_i64(), cache.as_str()), (Some(2), "miss"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "Redis down cost {:?}", started.elapsed());
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 2);
}

#[tokio::test]
async fn days_are_the_tenants_own_in_new_york_and_in_tokyo() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;
    let new_york = app.tenant_in("US", "America/New_York").await;
    let tokyo = app.tenant_in("JP", "Asia/Tokyo").await;
    // Recent instants for the chart: 03:00 UTC is the evening before in New York, noon in Tokyo.
    let recent = (Utc::now() - Duration::days(3)).date_naive().and_hms_opt(3, 0, 0).expect("a time").and_utc();
    let instants = [
        "2026-03-10T02:00:00Z".to_owned(), // New York 9 March 22:00; Tokyo 10 March 11:00
        "2026-03-10T16:00:00Z".to_owned(), // New York 10 March 12:00; Tokyo 11 March 01:00
        "2026-03-31T23:30:00Z".to_owned(), // New York 31 March; Tokyo 1 April
        "2026-04-01T03:00:00Z".to_owned(), // New York 31 March 23:00; Tokyo 1 April 12:00
        recent.to_rfc3339(),
    ];
    let mut csv = String::from("first_name,status,created_at\n");
    for (i, instant) in instants.iter().enumerate() {
        csv.push_str(&format!("Lead{i},new,{instant}\n"));
    }
    for admin in [&new_york, &tokyo] {
        let id = import_file(&app, admin, "leads.csv", csv.clone().into_bytes(), &[("entity", "leads")]).await;
        let done = app.wait_import(admin, id, std::time::Duration::from_secs(60)).await;
        assert_eq!(done["created"].as_i64(), Some(5), "{done}");
    }
    let new_leads = |pipeline: &Value| pipeline["leads"][0]["count"].as_i64();
    for (range, in_new_york, in_tokyo) in [
        ("start_date=2026-03-09&end_date=2026-03-09", 1, 0),
        ("start_date=2026-03-10&end_date=2026-03-10", 1, 1),
        ("start_date=2026-03-11&end_date=2026-03-11", 0, 1),
        ("start_date=2026-03-01&end_date=2026-03-31", 4, 2),
        ("start_date=2026-04-01&end_date=2026-04-30", 0, 2),
        ("start_date=2026-03-31&end_date=2026-04-01", 2, 2),
    ] {
        for (admin, expected) in [(&new_york, in_new_york), (&tokyo, in_tokyo)] {
            let reply = app.get(&format!("/api/v1/reports/pipeline?{range}"), admin).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            assert_eq!(new_leads(reply.data()), Some(expected), "{range} for {}: {}", admin.email, reply.body);
        }
    }
    // The chart counts the recent lead on its local day.
    for (admin, zone) in [(&new_york, "America/New_York"), (&tokyo, "Asia/Tokyo")] {
        let zone: Tz = zone.parse().expect("zone");
        let local_day: NaiveDate = recent.with_timezone(&zone).date_naive();
        let (figures, _) = dashboard(&app, admin).await;
        let chart = figures["chart_data"].as_array().expect("chart");
        assert_eq!(chart.len(), 30);
        let day = |date: NaiveDate| {
            chart.iter().find(|point| point["date"] == json!(date)).map(|point| point["count"].clone())
        };
        assert_eq!(day(local_day), Some(json!(1)), "{zone}: {chart:?}");
        assert_eq!(chart.iter().map(|point| point["count"].as_i64().unwrap_or(0)).sum::<i64>(), 1, "{zone}");
        assert_eq!(
            chart.last().map(|point| point["date"].clone()),
            Some(json!(Utc::now().with_timezone(&zone).date_naive()))
        );
    }
}

#[tokio::test]
async fn support_sees_the_ticket_dashboard_and_no_reports() {
    let app = TestApp::spawn().await;
    let cast = cast(&app, app.tenant().await).await;
    let other = app.tenant().await;
    let ticket = |subject: &str, status: &str, priority: &str, queue: Option<&str>, assigned: Option<uuid::Uuid>| {
        json!({"subject": subject, "description": "d", "category": "bug", "priority": priority, "status": status,
            "queue": queue, "assigned_to_user_id": assigned})
    };
    let me = Some(cast.support.user_id);
    for body in [
        ticket("a", "open", "high", Some("billing"), me),
        ticket("b", "in_progress", "low", Some("billing"), None),
        ticket("c", "open", "urgent", Some("tech"), me),
        ticket("d", "resolved", "high", Some("tech"), me),
        ticket("e", "closed", "medium", None, None),
        ticket("f", "open", "medium", None, None),
    ] {
        created(&app, &cast.admin, "/api/v1/tickets", body).await;
    }
    created(&app, &other, "/api/v1/tickets", ticket("x", "open", "urgent", Some("billing"), None)).await;
    let (figures, _) = dashboard(&app, &cast.support).await;
    let pairs = |pairs: &[(Option<&str>, i64)]| -> Value {
        pairs.iter().map(|(key, count)| json!({"key": key, "count": count})).collect()
    };
    assert_eq!(
        figures,
        json!({
            "open_tickets": 4,
            "by_queue": pairs(&[(Some("billing"), 2), (Some("tech"), 1), (None, 1)]),
            "by_status": pairs(&[(Some("open"), 3), (Some("in_progress"), 1), (Some("resolved"), 1), (Some("closed"), 1)]),
            "by_priority": pairs(&[(Some("low"), 1), (Some("medium"), 1), (Some("high"), 1), (Some("urgent"), 1)]),
            "my_assigned": 2,
        })
    );
}
