//! Bad input never gets a 5xx: each answers the error envelope with the right status, and writes nothing.

use crm_tests::{JWT_SECRET, PASSWORD, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_refused_without_writes() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let url = format!("{}/api/v1/leads", app.address);
    let send_raw = |body: &'static str, content_type: &'static str| {
        app.client.post(&url).bearer_auth(&admin.token).header("content-type", content_type).body(body).send()
    };

    TestApp::read(send_raw("{\"first_name\": ", "application/json").await.expect("sent"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "malformed_json");
    TestApp::read(send_raw("first_name=Ada", "application/x-www-form-urlencoded").await.expect("sent"))
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    let wrong_type = app.post("/api/v1/leads", &admin, json!({ "first_name": 42 })).await;
    wrong_type.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(
        wrong_type.field_error("first_name").is_some_and(|m| m.contains("expected a string")),
        "{}",
        wrong_type.body
    );

    let unknown_field =
        app.post("/api/v1/leads", &admin, json!({ "first_name": "Ada", "favourite_color": "red" })).await;
    unknown_field.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(unknown_field.body.to_string().contains("favourite_color"));

    let bad_enum = app
        .post("/api/v1/leads", &admin, json!({ "first_name": "Ada", "status": "won", "lead_source": "Carrier pigeon" }))
        .await;
    bad_enum.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(bad_enum.field_error("status").is_some_and(|m| m.contains("new, contacted, qualified, lost, converted")));
    assert!(bad_enum.field_error("lead_source").is_some_and(|m| m.contains("Website")));
    let codes: Vec<_> =
        bad_enum.body["details"]["errors"].as_array().expect("errors").iter().map(|e| e["code"].clone()).collect();
    assert_eq!(codes, [json!("invalid_enum"), json!("invalid_enum")]);

    let invalid = app.post("/api/v1/leads", &admin, json!({ "email": "not-an-email", "phone": "12" })).await;
    invalid.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(invalid.field_error("first_name"), Some("is required"));
    assert!(invalid.field_error("email").is_some_and(|m| m.contains("not a valid email")));
    assert!(invalid.field_error("phone").is_some_and(|m| m.contains("not a valid phone")));

    let too_long = app.post("/api/v1/leads", &admin, json!({ "first_name": "x".repeat(300) })).await;
    too_long.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let huge = json!({ "first_name": "Ada", "notes": "x".repeat(2 * 1024 * 1024) });
    app.post("/api/v1/leads", &admin, huge).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    let not_an_object = app.post("/api/v1/leads", &admin, json!(["first_name"])).await;
    not_an_object.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    assert_eq!(app.count_rows("leads", None).await, 0, "no bad request wrote a lead");
}

#[tokio::test]
async fn bad_paths_queries_and_routes_answer_the_envelope() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    app.get("/api/v1/leads/not-a-uuid", &admin).await.assert_error(StatusCode::BAD_REQUEST, "invalid_path");
    app.get("/api/v1/leads?limit=1000", &admin)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let not_a_number = app.get("/api/v1/leads?limit=abc", &admin).await;
    not_a_number.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_query");
    assert!(not_a_number.field_error("limit").is_some(), "every 422 names its field: {}", not_a_number.body);
    let sort = app.get("/api/v1/leads?sort=password", &admin).await;
    sort.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(sort.field_error("sort").is_some_and(|m| m.contains("created_at")));
    app.get("/api/v1/leads?status=won", &admin)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/leads?created_from=yesterday", &admin)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/nothing-here", &admin).await.assert_error(StatusCode::NOT_FOUND, "route_not_found");
    app.request(Method::GET, "/definitely/not/a/route", None, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "route_not_found");
    app.request(Method::PUT, "/api/v1/leads", Some(&admin.token), None)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

fn token_with(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

#[tokio::test]
async fn missing_forged_and_expired_tokens_are_401() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let now = chrono::Utc::now().timestamp();
    let claims = |iat: i64, exp: i64| json!({ "sub": admin.user_id, "tenant": admin.tenant_id, "role": "admin", "iat": iat, "exp": exp });
    let tokens = [
        token_with("some-other-secret-that-is-long-enough-xx", claims(now, now + 600)),
        token_with(JWT_SECRET, claims(now - 7200, now - 3600)),
        token_with(JWT_SECRET, claims(now + 3600, now + 7200)),
        token_with(JWT_SECRET, json!({ "sub": admin.user_id, "role": "admin", "iat": now, "exp": now + 600 })),
        // alg "none": header {"alg":"none","typ":"JWT"} and an empty signature.
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", {
            let payload = serde_json::to_vec(&claims(now, now + 600)).expect("json");
            base64_url(&payload)
        }),
        "garbage".to_owned(),
    ];
    for token in tokens {
        let reply = app.request(Method::GET, "/api/v1/leads", Some(&token), None).await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    app.request(Method::GET, "/api/v1/leads", None, None).await.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let basic =
        app.client.get(format!("{}/api/v1/leads", app.address)).basic_auth("a", Some("b")).send().await.expect("sent");
    TestApp::read(basic).await.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let expired = token_with(JWT_SECRET, claims(now - 7200, now - 3600));
    let reply = app.request(Method::GET, "/api/v1/auth/me", Some(&expired), None).await;
    assert!(reply.body["error"].as_str().is_some_and(|m| m.contains("expired")));
    // A valid token still works, so the refusals above were about the tokens.
    assert_eq!(app.get("/api/v1/auth/me", &admin).await.status, StatusCode::OK);
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn login_failures_are_rate_limited_and_audited() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let missing = app.login("", "").await;
    missing.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(missing.field_error("password"), Some("is required"));
    for _ in 0..5 {
        app.login(&admin.email, "wrong password").await.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let limited = app.login(&admin.email, PASSWORD).await;
    limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"].to_str().expect("header").parse().expect("seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let failures: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'login_failed'")
            .bind(admin.tenant_id)
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(failures, 5);
    // Unknown emails are throttled too, and answer exactly like a wrong password.
    let unknown = app.login("nobody@nowhere.test", "whatever1").await;
    unknown.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(unknown.body["error"], "the email or password is incorrect");
}

/// Issue 9, finding 12: a JSON array where an object belongs is refused; it used to sign in.
#[tokio::test]
async fn bodies_that_are_not_objects_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    let array =
        app.request(reqwest::Method::POST, "/api/v1/auth/login", None, Some(json!([admin.email, PASSWORD]))).await;
    array.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(array.field_error("body"), Some("must be a JSON object"));
    assert!(array.body.get("data").is_none());
    let leads_before = app.count_rows("leads", Some(admin.tenant_id)).await;
    for body in [json!(["Ada"]), json!("Ada"), json!(42), json!(null)] {
        let reply = app.post("/api/v1/leads", &admin, body.clone()).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(reply.field_error("body"), Some("must be a JSON object"), "{body}");
    }
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, leads_before);
}

/// Issue 9, finding 8: a NUL byte (Postgres refuses it in text) was a 500 with a backtrace in the log.
#[tokio::test]
async fn control_characters_are_a_422_naming_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;

    let login = app.login("ada\u{0}@tenant.test", PASSWORD).await;
    login.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(login.field_error("email").is_some_and(|m| m.contains("U+0000")), "{}", login.body);

    let nul = app.post("/api/v1/leads", &admin, json!({ "first_name": "Ada\u{0}" })).await;
    nul.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(nul.field_error("first_name").is_some_and(|m| m.contains("control characters")), "{}", nul.body);
    let bell = app.post("/api/v1/leads", &admin, json!({ "first_name": "Ada", "notes": "ring \u{7}" })).await;
    bell.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(bell.field_error("notes").is_some_and(|m| m.contains("U+0007")), "{}", bell.body);
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 0, "nothing was written");

    // Tabs and line breaks are text; so is a backslash followed by "u0000".
    let fine = app.post("/api/v1/leads", &admin, json!({ "first_name": "Ada", "notes": "a\tb\nc\r\\u0000" })).await;
    assert_eq!(fine.status, StatusCode::CREATED, "{}", fine.body);

    let query = app.get("/api/v1/leads?q=Ada%00", &admin).await;
    query.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_query");
    assert!(query.field_error("q").is_some_and(|m| m.contains("U+0000")), "{}", query.body);
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 1);
}

/// Issue 9, finding 11: a caller's x-request-id of any size was kept, logged and stored on jobs.
#[tokio::test]
async fn only_short_plain_request_ids_are_kept() {
    let app = TestApp::spawn().await;
    let send = |id: String| app.client.get(format!("{}/health", app.address)).header("x-request-id", id).send();
    let echoed = |response: &reqwest::Response| {
        response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let plain = send("trace-42.a:b_c".into()).await.expect("sent");
    assert_eq!(echoed(&plain), "trace-42.a:b_c", "a plain id is kept");
    for unusable in ["x".repeat(8 * 1024), "has space".into(), "<script>".into()] {
        let response = send(unusable.clone()).await.expect("sent");
        let replaced = echoed(&response);
        assert_eq!(response.status(), StatusCode::OK);
        assert_ne!(replaced, unusable);
        assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "a fresh id instead of {:.20}: {replaced}", unusable);
    }
}
