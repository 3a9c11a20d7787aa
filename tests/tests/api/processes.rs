//! The three binaries as real processes: configuration errors, waiting for the schema, readiness, and a
//! clean stop on SIGTERM.

use crm_tests::{Process, empty_database, environment, fresh_database, run_binary};
use nix::sys::signal::Signal;
use redis::AsyncCommands;
use std::time::Duration;

fn with_info_logs(database_url: &str, prefix: &str) -> std::collections::HashMap<String, String> {
    let mut env = environment(database_url, prefix);
    env.insert("RUST_LOG".into(), "info".into());
    env.insert("LOG_FORMAT".into(), "json".into());
    env
}

#[tokio::test]
async fn worker_and_scheduler_wait_for_the_schema_become_ready_and_stop_on_sigterm() {
    let database_url = empty_database().await;
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let env = with_info_logs(&database_url, &prefix);
    let mut worker = Process::start("crm-worker", &["--queues", "imports,emails", "--concurrency", "2"], &env);
    let mut scheduler = Process::start("crm-scheduler", &[], &env);

    for process in [&worker, &scheduler] {
        let waiting = process.wait_for_line("crm-api migrate", Duration::from_secs(10)).await;
        assert!(waiting.is_some(), "no 'waiting for migrate' line: {:?}", process.output());
        assert!(!process.output().iter().any(|line| line.contains("ready")), "ready before the schema exists");
    }
    let (status, _, stderr) = run_binary("crm-api", &["migrate"], &env).await;
    assert!(status.success(), "migrate failed: {stderr}");

    let ready = worker.wait_for_line("crm-worker ready", Duration::from_secs(15)).await.expect("worker ready");
    assert!(ready.contains("imports") && ready.contains("emails"), "{ready}");
    scheduler.wait_for_line("crm-scheduler ready", Duration::from_secs(15)).await.expect("scheduler ready");

    // The worker announces itself with a heartbeat that expires if it dies.
    let client = redis::Client::open(crm_tests::redis_url()).expect("redis");
    let mut redis = client.get_multiplexed_async_connection().await.expect("redis connection");
    let keys: Vec<String> = redis.keys(format!("{prefix}:workers:*")).await.expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis.ttl(&keys[0]).await.expect("ttl");
    assert!((1..=30).contains(&ttl), "{ttl}");

    for process in [&mut worker, &mut scheduler] {
        process.signal(Signal::SIGTERM);
        let status = process.wait_exit(Duration::from_secs(10)).await.expect("exits within 10 s of SIGTERM");
        assert!(status.success(), "{status:?}: {:?}", process.output());
        // The output pipe may still hold the last lines just after exit.
        assert!(process.wait_for_line("stopped", Duration::from_secs(2)).await.is_some(), "{:?}", process.output());
    }
    let keys: Vec<String> = redis.keys(format!("{prefix}:workers:*")).await.expect("keys");
    assert!(keys.is_empty(), "a stopped worker removes its heartbeat");
}

#[tokio::test]
async fn the_api_binary_serves_and_drains_on_sigterm() {
    let database_url = fresh_database().await;
    let env = with_info_logs(&database_url, "test-api-binary");
    let mut api = Process::start("crm-api", &["serve"], &env);
    let line = api.wait_for_line("crm-api listening", Duration::from_secs(15)).await.expect("listening");
    let log: serde_json::Value = serde_json::from_str(&line).expect("json log line");
    let address = log["addr"].as_str().expect("addr field").to_owned();
    let health = reqwest::get(format!("http://{address}/health")).await.expect("health");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    assert!(health.headers().contains_key("x-request-id"));
    api.signal(Signal::SIGTERM);
    let status = api.wait_exit(Duration::from_secs(15)).await.expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn invalid_configuration_stops_each_binary_with_one_line_naming_the_variable() {
    let database_url = fresh_database().await;
    let mut short_secret = environment(&database_url, "test-config");
    short_secret.insert("JWT_SECRET".into(), "short".into());
    for binary in ["crm-api", "crm-worker", "crm-scheduler"] {
        let (status, _, stderr) = run_binary(binary, &[], &short_secret).await;
        assert_eq!(status.code(), Some(1), "{binary}");
        assert_eq!(stderr.trim().lines().count(), 1, "{binary}: {stderr}");
        assert!(stderr.contains("JWT_SECRET") && stderr.contains("32 bytes"), "{binary}: {stderr}");
    }
    let mut no_database = environment(&database_url, "test-config");
    no_database.remove("DATABASE_URL");
    let (status, _, stderr) = run_binary("crm-worker", &[], &no_database).await;
    assert_eq!(status.code(), Some(1));
    assert_eq!(stderr.trim(), "configuration error: DATABASE_URL is required but not set");
    let (status, _, stderr) =
        run_binary("crm-worker", &["--queues", "imports,printing"], &environment(&database_url, "x")).await;
    assert!(!status.success());
    assert!(stderr.contains("\"printing\""), "{stderr}");
}

#[tokio::test]
async fn create_tenant_prints_one_json_line_and_refuses_bad_arguments() {
    let database_url = fresh_database().await;
    let env = environment(&database_url, "test-cli");
    let email = format!("owner-{}@cli.test", uuid::Uuid::new_v4().simple());
    let args =
        ["create-tenant", "--name", "Acme", "--admin-email", email.as_str(), "--admin-password", "long-enough-pw"];
    let (status, stdout, stderr) = run_binary("crm-api", &args, &env).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1);
    let created: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert!(created["tenant_id"].is_string() && created["user_id"].is_string(), "{created}");

    // Emails are unique per tenant: the same owner may start a second workspace.
    let (status, stdout, stderr) = run_binary("crm-api", &args, &env).await;
    assert!(status.success(), "{stderr}");
    let second: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_ne!(second["tenant_id"], created["tenant_id"]);
    let (status, _, stderr) = run_binary(
        "crm-api",
        &["create-tenant", "--name", "B", "--admin-email", "nope", "--admin-password", "long-enough-pw"],
        &env,
    )
    .await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("--admin-email"), "{stderr}");
    let pool = sqlx::PgPool::connect(&database_url).await.expect("pool");
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&pool).await.expect("count");
    assert_eq!(tenants, 2, "the failed command wrote nothing");
}
