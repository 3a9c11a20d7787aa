//! The OpenAPI document lists every route with the errors it can answer; /docs renders it.

use crm_tests::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_document_covers_every_route_and_its_errors() {
    let app = TestApp::spawn().await;
    let reply = app.request(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let document = reply.body;
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", document["openapi"]);
    let paths = document["paths"].as_object().expect("paths");
    let mut expected = vec![
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/auth/session", "post"),
        ("/api/v1/auth/session", "delete"),
        ("/api/v1/users", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/audit-log", "get"),
        ("/api/v1/teams", "get"),
        ("/api/v1/teams", "post"),
        ("/api/v1/teams/{id}/members", "put"),
        ("/api/v1/tickets/{id}/replies", "get"),
        ("/api/v1/tickets/{id}/replies", "post"),
        ("/api/v1/jobs", "get"),
        ("/api/v1/jobs/{id}", "get"),
        ("/api/v1/jobs/{id}/cancel", "post"),
        ("/api/v1/jobs/{id}/retry", "post"),
        ("/api/v1/admin/queues", "get"),
        ("/api/v1/admin/probes", "post"),
        ("/api/v1/imports", "get"),
        ("/api/v1/imports", "post"),
        ("/api/v1/imports/preview", "post"),
        ("/api/v1/exports", "get"),
        ("/api/v1/exports", "post"),
        ("/api/v1/exports/{id}", "get"),
        ("/api/v1/exports/{id}/cancel", "post"),
        ("/api/v1/exports/{id}/download", "get"),
        ("/api/v1/export-templates", "get"),
        ("/api/v1/export-templates", "post"),
        ("/api/v1/export-templates/{id}", "get"),
        ("/api/v1/export-templates/{id}", "patch"),
        ("/api/v1/export-templates/{id}", "delete"),
        ("/api/v1/export-templates/{id}/run", "post"),
        ("/api/v1/imports/{id}", "get"),
        ("/api/v1/imports/{id}/errors", "get"),
        ("/api/v1/imports/{id}/errors.csv", "get"),
        ("/api/v1/imports/{id}/retry", "post"),
        ("/api/v1/imports/{id}/cancel", "post"),
        ("/api/v1/import-errors/{id}", "patch"),
        ("/api/v1/reports/pipeline", "get"),
        ("/api/v1/reports/lead-source", "get"),
        ("/api/v1/reports/conversion-rate", "get"),
        ("/api/v1/reports/revenue-by-client", "get"),
        ("/api/v1/reports/user-activity", "get"),
        ("/api/v1/reports/follow-ups", "get"),
        ("/api/v1/reports/client-retention", "get"),
        ("/api/v1/reports/project-performance", "get"),
        ("/api/v1/reports/upcoming-tasks", "get"),
        ("/api/v1/reports/revenue-forecast", "get"),
        ("/api/v1/dashboard/metrics", "get"),
        ("/api/v1/schedules", "get"),
        ("/api/v1/schedules", "post"),
        ("/api/v1/schedules/{id}", "get"),
        ("/api/v1/schedules/{id}", "patch"),
        ("/api/v1/schedules/{id}", "delete"),
        ("/api/v1/schedules/{id}/run", "post"),
        ("/api/v1/schedules/{id}/runs", "get"),
        ("/api/v1/emails", "get"),
        ("/api/v1/admin/system-schedules", "get"),
        ("/api/v1/admin/system-schedules/{name}/run", "post"),
        ("/api/v1/events/stream", "get"),
    ];
    let record_paths: Vec<(String, &str)> = crm_tests::RECORD_KINDS
        .iter()
        .flat_map(|kind| {
            [
                (format!("/api/v1/{kind}"), "get"),
                (format!("/api/v1/{kind}"), "post"),
                (format!("/api/v1/{kind}/{{id}}"), "get"),
                (format!("/api/v1/{kind}/{{id}}"), "patch"),
                (format!("/api/v1/{kind}/{{id}}"), "delete"),
                (format!("/api/v1/{kind}/{{id}}/restore"), "post"),
            ]
        })
        .collect();
    expected.extend(record_paths.iter().map(|(path, method)| (path.as_str(), *method)));
    for (path, method) in &expected {
        let operation = &paths.get(*path).unwrap_or_else(|| panic!("{path} missing"))[*method];
        assert!(operation.is_object(), "{method} {path} missing");
        let responses = operation["responses"].as_object().expect("responses");
        if path.starts_with("/api/v1/") && *path != "/api/v1/auth/login" {
            assert!(responses.contains_key("401"), "{method} {path} lacks 401");
            assert!(responses.contains_key("503"), "{method} {path} lacks 503");
        }
        if path.contains("{id}") {
            assert!(responses.contains_key("404"), "{method} {path} lacks 404");
        }
        if operation.get("requestBody").is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(responses.contains_key(status), "{method} {path} lacks {status}");
            }
        }
    }
    let login = &paths["/api/v1/auth/login"]["post"];
    for status in ["401", "422", "429", "503"] {
        assert!(login["responses"].get(status).is_some(), "login documents {status}: {login}");
    }
    assert!(login["responses"]["503"]["headers"].get("Retry-After").is_some(), "{login}");
    assert!(paths["/api/v1/leads"]["get"]["responses"]["429"]["headers"].get("Retry-After").is_some());
    // Requests name what is required, the enumerations as the API writes them, and the ranges.
    let schemas = &document["components"]["schemas"];
    let required = |name: &str| schemas[name]["required"].as_array().cloned().unwrap_or_default();
    assert!(
        required("LoginRequest").contains(&json!("email")) && required("LoginRequest").contains(&json!("password"))
    );
    assert!(required("LeadCreate").contains(&json!("first_name")), "{}", schemas["LeadCreate"]);
    assert!(required("InteractionCreate").contains(&json!("type")), "{}", schemas["InteractionCreate"]);
    assert!(schemas["LeadSource"]["enum"].as_array().is_some_and(|values| values.contains(&json!("Cold Call"))));
    let limit = paths["/api/v1/leads"]["get"]["parameters"]
        .as_array()
        .and_then(|params| params.iter().find(|p| p["name"] == "limit"))
        .cloned()
        .expect("limit");
    assert_eq!(limit["schema"]["maximum"], 100, "{limit}");
    let probe = &paths["/api/v1/admin/probes"]["post"]["responses"]["202"];
    assert!(probe["headers"].get("Location").is_some(), "{probe}");
    assert!(probe["content"]["application/json"]["schema"].to_string().contains("JobAccepted"), "{probe}");
    assert!(paths["/api/v1/leads"]["post"]["responses"].get("409").is_some());
    let stream = &paths["/api/v1/events/stream"]["get"]["responses"]["200"]["content"];
    assert!(stream.get("text/event-stream").is_some(), "{stream}");
    for path in ["/api/v1/schedules/{id}/run", "/api/v1/admin/system-schedules/{name}/run"] {
        let fired = &paths[path]["post"]["responses"]["202"];
        assert!(fired["headers"].get("Location").is_some(), "{path}: {fired}");
        assert!(fired["content"]["application/json"]["schema"].to_string().contains("JobAccepted"), "{path}: {fired}");
    }
    // Every report documents its response schema, its 403 and its 422.
    for (path, item) in paths.iter().filter(|(path, _)| path.starts_with("/api/v1/reports/")) {
        let responses = &item["get"]["responses"];
        let schema = &responses["200"]["content"]["application/json"]["schema"];
        assert!(schema.get("$ref").or_else(|| schema.get("properties")).is_some(), "{path}: {responses}");
        assert!(responses.get("403").is_some() && responses.get("422").is_some(), "{path}: {responses}");
    }
    let dashboard = &paths["/api/v1/dashboard/metrics"]["get"]["responses"]["200"];
    assert!(dashboard["headers"].get("X-Cache").is_some(), "{dashboard}");
    let upload = &paths["/api/v1/imports"]["post"];
    assert!(upload["requestBody"]["content"].get("multipart/form-data").is_some(), "{upload}");
    assert!(paths["/api/v1/imports/{id}/retry"]["post"]["responses"].get("409").is_some());
    let documented: usize = paths.values().map(|item| item.as_object().map_or(0, |ops| ops.len())).sum();
    assert_eq!(documented, expected.len(), "an undocumented or unexpected operation");

    // Code generators name a method per operationId (issue 9, finding 12): each must be unique.
    let mut operation_ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
        .map(|operation| operation["operationId"].as_str().expect("every operation has an operationId"))
        .collect();
    operation_ids.sort_unstable();
    let before = operation_ids.len();
    operation_ids.dedup();
    assert_eq!(operation_ids.len(), before, "repeated operationIds among {operation_ids:?}");
    assert!(operation_ids.contains(&"list_leads") && operation_ids.contains(&"restore_tickets"), "{operation_ids:?}");
    // Enumerations as the API writes them, not as Rust spells them.
    let sources = &document["components"]["schemas"]["LeadSource"]["enum"];
    assert!(sources.as_array().is_some_and(|values| values.contains(&"Cold Call".into())), "{sources}");

    let docs = app.client.get(format!("{}/docs", app.address)).send().await.expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.expect("html").contains("<html"));
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(app.request(Method::GET, "/health", None, None).await.body["status"], "ok");
    let ready = app.request(Method::GET, "/ready", None, None).await;
    assert_eq!(
        (ready.status, ready.body["postgres"].clone(), ready.body["redis"].clone()),
        (StatusCode::OK, true.into(), true.into())
    );
    let metrics =
        app.client.get(format!("{}/metrics", app.address)).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/ready\""));
}

/// Issue 9, finding 11: the API sent no security headers.
#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/api/v1/auth/me", "/api/v1/no-such-route"] {
        let response = app.client.get(format!("{}{path}", app.address)).send().await.expect("sent");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("content-security-policy"), "default-src 'none'; frame-ancestors 'none'", "{path}");
    }
    let docs = app.client.get(format!("{}/docs", app.address)).send().await.expect("docs");
    let policy = docs.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
}

/// Issue 9, finding 11: /docs loaded an unpinned script from a CDN and broke offline. Every asset of the
/// viewer now comes from the binary, and its page names no other origin.
#[tokio::test]
async fn the_documentation_viewer_is_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(3)).build().expect("client");
    let page = client.get(format!("{}/docs", app.address)).send().await.expect("docs");
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"].to_str().expect("policy").to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("http"), "{policy}");
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "the page loads another origin: {html}");
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"] {
        let response = client.get(format!("{}/docs/{asset}", app.address)).send().await.expect("asset");
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let body = response.text().await.expect("asset body");
        assert!(body.len() > 100, "{asset} is empty");
        if asset == "swagger-initializer.js" {
            assert!(body.contains("/api/v1/openapi.json"), "{body}");
        }
    }
}
