//! `crm-api`: the HTTP API. `Application::build` wires settings into a router bound to a listener; the binary
//! and the tests run the same thing.

pub mod auth;
pub mod cli;
pub mod console;
pub mod error;
pub mod extract;
pub mod http_metrics;
pub mod login_throttle;
pub mod notify;
pub mod openapi;
pub mod request_limits;
pub mod routes;
pub mod serve;
pub mod signed_links;
pub mod state;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use crm_shared::config::Settings;
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

/// Largest JSON body the API reads (uploads get their own limit).
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;
/// How long in-flight requests may take to finish after SIGTERM.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crm_shared::email::set_public_url(&settings.public_url);
        let db = crm_shared::db::pool(&settings)?;
        let redis = crm_shared::redis_conn::connect_lazy(&settings)?;
        let storage = crm_shared::storage::Storage::from_url(&settings.storage_url)
            .map_err(|problem| anyhow::anyhow!("STORAGE_URL: {problem}"))?;
        let dashboard_cache = crm_shared::dashboard_cache::DashboardCache::new(
            redis.clone(),
            &settings.redis_prefix,
            settings.dashboard_cache_ttl,
        );
        let state = AppState {
            db,
            redis,
            dashboard_cache,
            storage,
            jwt: Arc::new(auth::JwtKeys::new(&settings)),
            metrics: http_metrics::recorder()?,
            hashing: crm_shared::password::PasswordHashing::for_this_machine(),
            tenant_shares: request_limits::TenantShares::new(settings.tenant_max_concurrent_requests),
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
            stopping: CancellationToken::new(),
            settings: Arc::new(settings),
        };
        let listener = TcpListener::bind(state.settings.api_addr).await?;
        Ok(Self { router: router(state.clone()), listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|addr| addr.port()).unwrap_or_default()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish for up to `DRAIN_TIMEOUT`.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "crm-api listening");
        let timeouts = serve::Timeouts { header: self.state.settings.http_header_timeout, drain: DRAIN_TIMEOUT };
        let gauges = tokio::spawn(routes::health::refresh_job_gauges(self.state.clone(), shutdown.child_token()));
        let listener = {
            let (url, events, stop) =
                (self.state.settings.database_url().to_owned(), self.state.events.clone(), shutdown.child_token());
            tokio::spawn(async move { crm_shared::db::events::listen(&url, events, stop).await })
        };
        let stopping = self.state.stopping.clone();
        let watch = shutdown.clone();
        tokio::spawn(async move {
            watch.cancelled().await;
            stopping.cancel();
        });
        serve::serve(self.listener, self.router, timeouts, shutdown).await;
        gauges.abort();
        listener.abort();
        self.state.db.close().await;
        tracing::info!("crm-api stopped");
        Ok(())
    }
}

/// Job events a replica holds for watchers that fall behind; past it they are told to `resync`.
const EVENT_BUFFER: usize = 4096;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::teams::router())
        .merge(routes::record_kinds::lead_endpoints::router())
        .merge(routes::record_kinds::client_endpoints::router())
        .merge(routes::record_kinds::project_endpoints::router())
        .merge(routes::record_kinds::interaction_endpoints::router())
        .merge(routes::record_kinds::ticket_endpoints::router())
        .merge(routes::ticket_replies::router())
        .merge(routes::jobs::router())
        .merge(routes::imports::router())
        .merge(routes::exports::router())
        .merge(routes::export_templates::router())
        .merge(routes::reports::router())
        .merge(routes::dashboard::router())
        .merge(routes::schedules::router())
        .merge(routes::emails::router())
        .merge(routes::events::router())
        .route("/health", get(routes::health::health))
        .route("/ready", get(routes::health::ready))
        .route("/metrics", get(routes::health::metrics))
        .route("/api/v1/openapi.json", get(openapi_json))
        .merge(docs())
        .merge(console::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), request_limits::enforce))
        .layer(axum::middleware::from_fn(http_metrics::track))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(state.settings.http_body_idle_timeout))
        .with_state(state);

    api.layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or_default();
            tracing::info_span!(
                "request",
                method = %request.method(),
                path = %request.uri().path(),
                request_id,
                tenant_id = tracing::field::Empty,
                user_id = tracing::field::Empty,
            )
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unusable_request_id))
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers that keep browsers from sniffing, framing or leaking what the API answers. The API serves JSON and
/// CSV only, so no content may run; `/docs` sets its own policy, for the documentation page's script.
async fn security_headers(mut response: Response) -> Response {
    use axum::http::HeaderValue;
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ] {
        headers.entry(HeaderName::from_static(name)).or_insert(HeaderValue::from_static(value));
    }
    response
}

/// The longest caller-supplied request id kept.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// A caller's `x-request-id` is kept only when it is short and plain (letters, digits, `-`, `_`, `.`, `:`);
/// anything else is replaced by a fresh id, so an 8 KiB or control-laden id never reaches the logs or job rows.
async fn drop_unusable_request_id(mut request: Request<axum::body::Body>) -> Request<axum::body::Body> {
    let usable = request.headers().get(&REQUEST_ID).and_then(|value| value.to_str().ok()).is_none_or(|id| {
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID_CHARS
            && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    });
    if !usable || request.headers().get(&REQUEST_ID).is_some_and(|value| value.to_str().is_err()) {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

async fn openapi_json() -> impl IntoResponse {
    axum::Json(openapi::ApiDoc::openapi())
}

/// The documentation viewer (Swagger UI), its assets compiled into the binary from the
/// `utoipa-swagger-ui-vendored` crate: no CDN, and it works offline. `/docs` redirects to `/docs/`.
fn docs<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let viewer = utoipa_swagger_ui::SwaggerUi::new("/docs")
        .config(utoipa_swagger_ui::Config::new(["/api/v1/openapi.json"]).try_it_out_enabled(true));
    Router::from(viewer).layer(axum::middleware::map_response(docs_policy))
}

/// The viewer's own scripts and styles, from this origin only; it may fetch only this origin.
async fn docs_policy(mut response: Response) -> Response {
    use axum::http::HeaderValue;
    response.headers_mut().insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

async fn unknown_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route; see /api/v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not accept that method")
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal(format!("handler panicked: {detail}")).into_response()
}
