//! The console's server side (contract §11): its files come from the binary with a strict policy and no data;
//! its session cookie is HttpOnly and SameSite=Strict (and Secure over https); a write signed in by the cookie
//! but not made by the console (no X-Requested-With, or another origin) is refused with nothing written.

use crm_tests::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn sign_in(app: &TestApp, email: &str) -> (String, String) {
    let response = app
        .client
        .post(format!("{}/api/v1/auth/session", app.address))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("session");
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()["set-cookie"].to_str().expect("cookie").to_owned();
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"]["token"], Value::Null, "the token stays out of the page's reach: {body}");
    assert_eq!(body["data"]["user"]["email"], email);
    let pair = set_cookie.split(';').next().expect("name=value").to_owned();
    (pair, set_cookie)
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_and_its_cookie_session_refuses_cross_site_writes() {
    let app = TestApp::spawn().await;
    let admin = app.tenant().await;
    for (path, content_type) in
        [("/console", "text/html"), ("/console/app.js", "text/javascript"), ("/console/app.css", "text/css")]
    {
        let response = app.client.get(format!("{}{path}", app.address)).send().await.expect("file");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.headers()["content-type"].to_str().expect("type").starts_with(content_type), "{path}");
        let policy = response.headers()["content-security-policy"].to_str().expect("policy").to_owned();
        assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe"), "{path}: {policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        let body = response.text().await.expect("body");
        assert!(!body.contains(&admin.email), "no data in the files");
    }
    let page =
        app.client.get(format!("{}/console", app.address)).send().await.expect("page").text().await.expect("html");
    assert!(
        page.contains("/console/app.js") && !page.contains("http://") && !page.contains("https://"),
        "no CDN: {page}"
    );

    // Without any sign-in a write is 401 as before, not a CSRF refusal.
    let anonymous =
        app.client.post(format!("{}/api/v1/leads", app.address)).json(&json!({ "first_name": "X" })).send().await;
    TestApp::read(anonymous.expect("write")).await.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    let (cookie, set_cookie) = sign_in(&app, &admin.email).await;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{attribute} missing: {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    let url = |path: &str| format!("{}{path}", app.address);
    let me = app.client.get(url("/api/v1/auth/me")).header("cookie", &cookie).send().await.expect("me");
    assert_eq!(me.status(), StatusCode::OK, "the cookie signs reads in");

    let lead = json!({ "first_name": "Cookie", "email": "cookie@example.com" });
    let host = app.address.trim_start_matches("http://").to_owned();
    let look_alike = format!("http://{host}.evil.example");
    let attempts = [
        ("no X-Requested-With", None, None),
        ("another origin", Some("crm-console"), Some("https://evil.example")),
        ("a look-alike origin", Some("crm-console"), Some(look_alike.as_str())),
    ];
    for (what, requested_with, origin) in attempts {
        let mut request = app.client.post(url("/api/v1/leads")).header("cookie", &cookie).json(&lead);
        if let Some(value) = requested_with {
            request = request.header("x-requested-with", value);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let reply = TestApp::read(request.send().await.expect("write")).await;
        reply.assert_error(StatusCode::FORBIDDEN, "csrf");
        assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 0, "{what}: nothing written");
    }
    let made = app
        .client
        .post(url("/api/v1/leads"))
        .header("cookie", &cookie)
        .header("x-requested-with", "crm-console")
        .header("origin", &app.address)
        .json(&lead)
        .send()
        .await
        .expect("write");
    assert_eq!(made.status(), StatusCode::CREATED, "the console's own write");
    // Bearer callers are not cookie sessions: no header needed.
    let bearer = app.post("/api/v1/leads", &admin, json!({ "first_name": "Bearer" })).await;
    assert_eq!(bearer.status, StatusCode::CREATED);
    assert_eq!(app.count_rows("leads", Some(admin.tenant_id)).await, 2);

    // Signing out clears the cookie and ends the session everywhere.
    let out = app
        .client
        .delete(url("/api/v1/auth/session"))
        .header("cookie", &cookie)
        .header("x-requested-with", "crm-console")
        .send()
        .await
        .expect("sign out");
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(out.headers()["set-cookie"].to_str().expect("cookie").contains("Max-Age=0"));
    let after = app.client.get(url("/api/v1/auth/me")).header("cookie", &cookie).send().await.expect("me");
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn over_https_the_session_cookie_is_secure() {
    let app = TestApp::spawn_configured(
        crm_tests::fresh_database().await,
        crm_tests::redis_url(),
        &[("PUBLIC_URL", "https://crm.example.com")],
    )
    .await;
    let admin = app.tenant().await;
    let (_, set_cookie) = sign_in(&app, &admin.email).await;
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
}
