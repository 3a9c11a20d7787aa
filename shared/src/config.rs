//! One typed `Settings`, loaded once from the environment (and `.env` when present) and validated at start-up.
//! A missing or invalid setting is reported in one line naming the variable.

use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {variable} {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: SecretString,
    pub redis_url: SecretString,
    /// Prefix of every Redis key this deployment owns; lets several deployments (or test runs) share a Redis.
    pub redis_prefix: String,
    pub api_addr: SocketAddr,
    pub jwt_secret: SecretString,
    pub jwt_ttl: Duration,
    pub storage_url: String,
    pub smtp_url: Option<SecretString>,
    pub mail_from: String,
    pub log_format: LogFormat,
    pub rust_log: String,
    pub import_max_bytes: u64,
    pub database_max_connections: u32,
    /// Where `crm-worker` serves its Prometheus metrics; unset: not served.
    pub worker_metrics_addr: Option<SocketAddr>,
    /// `CRM_FAULT_INJECTION=1`: workers honour the faults probe jobs ask for. For tests only.
    pub fault_injection: bool,
    /// Requests of one tenant that may run at once on one API replica: its share of the database pool.
    pub tenant_max_concurrent_requests: usize,
    /// Requests per minute one signed-in user, and one tenant in all, may make (429 beyond).
    pub user_requests_per_minute: u64,
    pub tenant_requests_per_minute: u64,
    /// Admins of this tenant see every tenant's queue figures and the workers' names at
    /// `GET /api/v1/admin/queues`; every other admin sees their own tenant's only.
    pub operator_tenant_id: Option<uuid::Uuid>,
    /// When set, `GET /metrics` asks for `Authorization: Bearer <METRICS_TOKEN>`.
    pub metrics_token: Option<SecretString>,
    /// How long an export's file can be downloaded after it was made.
    pub export_ttl: Duration,
    /// How long an import's uploaded file is kept after the import ended.
    pub import_file_ttl: Duration,
    /// The most rows a PDF export may have (more: 422 at request time).
    pub pdf_max_rows: i64,
    /// How long a client may take to send a request's headers, and to send the next piece of its body.
    pub http_header_timeout: Duration,
    pub http_body_idle_timeout: Duration,
    /// How long a dashboard answer is cached in Redis (`DASHBOARD_CACHE_SECONDS`; 0 turns the cache off).
    pub dashboard_cache_ttl: Duration,
    /// Where users reach the API, for links in emails (`PUBLIC_URL`, default `http://` + `API_ADDR`).
    pub public_url: String,
    /// Closed tickets are deleted this many days after closing (`TICKET_RETENTION_DAYS`, default 90).
    pub ticket_retention_days: i32,
    /// Finished jobs are deleted this many days after they ended (`JOB_RETENTION_DAYS`, default 30).
    pub job_retention_days: i32,
}

pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl Settings {
    /// Reads `.env` (if any) and then the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// For a binary's `main`: the settings, or `None` after printing the one-line reason to stderr.
    pub fn load_or_report() -> Option<Self> {
        Self::from_env().map_err(|error| eprintln!("{error}")).ok()
    }

    /// Builds settings from any variable source; tests use it to avoid touching the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let required = |name: &'static str| {
            get(name).ok_or(ConfigError { variable: name, problem: "is required but not set".into() })
        };
        let invalid = |variable: &'static str, problem: String| ConfigError { variable, problem };

        let database_url = required("DATABASE_URL")?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(invalid("DATABASE_URL", "must be a postgres:// URL".into()));
        }
        let redis_url = required("REDIS_URL")?;
        if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
            return Err(invalid("REDIS_URL", "must be a redis:// URL".into()));
        }
        let jwt_secret = required("JWT_SECRET")?;
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(invalid(
                "JWT_SECRET",
                format!("must be at least {MIN_JWT_SECRET_BYTES} bytes (got {})", jwt_secret.len()),
            ));
        }
        let api_addr = get("API_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let api_addr: SocketAddr =
            api_addr.parse().map_err(|_| invalid("API_ADDR", format!("must be host:port, got {api_addr:?}")))?;
        let storage_url = get("STORAGE_URL").unwrap_or_else(|| "file://./data/files".into());
        if !(storage_url.starts_with("file://") || storage_url.starts_with("s3://")) {
            return Err(invalid("STORAGE_URL", "must be file:///path or s3://bucket/prefix".into()));
        }
        let smtp_url = get("SMTP_URL");
        if let Some(url) = &smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            return Err(invalid("SMTP_URL", "must be smtp://host:port or smtps://user:pass@host".into()));
        }
        let log_format = match get("LOG_FORMAT").as_deref().unwrap_or("pretty") {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => return Err(invalid("LOG_FORMAT", format!("must be pretty or json, got {other:?}"))),
        };
        let positive = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(text) => text
                    .parse::<u64>()
                    .ok()
                    .filter(|value| *value > 0)
                    .ok_or_else(|| invalid(name, format!("must be a positive integer, got {text:?}"))),
            }
        };
        let redis_prefix = get("REDIS_PREFIX").unwrap_or_else(|| "crm".into());
        if !redis_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(invalid("REDIS_PREFIX", "may hold only letters, digits, '-' and '_'".into()));
        }

        let database_max_connections = positive("DATABASE_MAX_CONNECTIONS", 20)?;
        let public_url = get("PUBLIC_URL").unwrap_or_else(|| format!("http://{api_addr}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(invalid("PUBLIC_URL", format!("must be an http:// or https:// URL, got {public_url:?}")));
        }
        let days = |name: &'static str, default: u64| -> Result<i32, ConfigError> {
            i32::try_from(positive(name, default)?).map_err(|_| invalid(name, "is too large".into()))
        };
        Ok(Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
            ticket_retention_days: days("TICKET_RETENTION_DAYS", 90)?,
            job_retention_days: days("JOB_RETENTION_DAYS", 30)?,
            database_url: database_url.into(),
            redis_url: redis_url.into(),
            redis_prefix,
            api_addr,
            jwt_secret: jwt_secret.into(),
            jwt_ttl: Duration::from_secs(positive("JWT_TTL_SECONDS", 900)?),
            storage_url,
            smtp_url: smtp_url.map(Into::into),
            mail_from: get("MAIL_FROM").unwrap_or_else(|| "crm@localhost".into()),
            log_format,
            rust_log: get("RUST_LOG").unwrap_or_else(|| "info".into()),
            import_max_bytes: positive("IMPORT_MAX_BYTES", 268_435_456)?,
            database_max_connections: u32::try_from(database_max_connections)
                .map_err(|_| invalid("DATABASE_MAX_CONNECTIONS", "is too large".into()))?,
            worker_metrics_addr: match get("WORKER_METRICS_ADDR") {
                None => None,
                Some(text) => Some(
                    text.parse()
                        .map_err(|_| invalid("WORKER_METRICS_ADDR", format!("must be host:port, got {text:?}")))?,
                ),
            },
            fault_injection: get("CRM_FAULT_INJECTION").is_some_and(|value| value == "1" || value == "true"),
            tenant_max_concurrent_requests: usize::try_from(positive(
                "TENANT_MAX_CONCURRENT_REQUESTS",
                (database_max_connections / 4).max(2),
            )?)
            .map_err(|_| invalid("TENANT_MAX_CONCURRENT_REQUESTS", "is too large".into()))?,
            user_requests_per_minute: positive("USER_REQUESTS_PER_MINUTE", 1200)?,
            tenant_requests_per_minute: positive("TENANT_REQUESTS_PER_MINUTE", 6000)?,
            metrics_token: get("METRICS_TOKEN").map(Into::into),
            operator_tenant_id: match get("OPERATOR_TENANT_ID") {
                None => None,
                Some(text) => {
                    Some(text.trim().parse().map_err(|_| {
                        invalid("OPERATOR_TENANT_ID", format!("must be a tenant id (UUID), got {text:?}"))
                    })?)
                }
            },
            export_ttl: Duration::from_secs(positive("EXPORT_TTL_HOURS", 168)? * 3600),
            import_file_ttl: Duration::from_secs(positive("IMPORT_FILE_TTL_DAYS", 30)? * 86_400),
            pdf_max_rows: i64::try_from(positive("PDF_MAX_ROWS", 50_000)?)
                .map_err(|_| invalid("PDF_MAX_ROWS", "is too large".into()))?,
            http_header_timeout: Duration::from_secs(positive("HTTP_HEADER_TIMEOUT_SECONDS", 10)?),
            http_body_idle_timeout: Duration::from_secs(positive("HTTP_BODY_IDLE_TIMEOUT_SECONDS", 30)?),
            dashboard_cache_ttl: Duration::from_secs(match get("DASHBOARD_CACHE_SECONDS") {
                None => 60,
                Some(text) => text.parse::<u64>().ok().filter(|seconds| *seconds <= 3600).ok_or_else(|| {
                    invalid("DASHBOARD_CACHE_SECONDS", format!("must be 0 to 3600 seconds, got {text:?}"))
                })?,
            }),
        })
    }

    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }

    pub fn redis_url(&self) -> &str {
        self.redis_url.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("DATABASE_URL", "postgres://localhost/crm"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
    ];

    #[test]
    fn defaults_apply_when_only_required_settings_are_given() {
        let settings = settings(&BASE).expect("valid");
        assert_eq!(settings.api_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.import_max_bytes, 268_435_456);
        assert_eq!(settings.storage_url, "file://./data/files");
        assert_eq!(settings.mail_from, "crm@localhost");
        assert_eq!(settings.log_format, LogFormat::Pretty);
        assert!(settings.smtp_url.is_none());
    }

    #[test]
    fn a_missing_variable_is_named() {
        let error = settings(&BASE[..2]).expect_err("JWT_SECRET missing");
        assert_eq!(error.variable, "JWT_SECRET");
        assert_eq!(error.to_string(), "configuration error: JWT_SECRET is required but not set");
    }

    #[test]
    fn a_short_jwt_secret_is_refused() {
        let mut pairs = BASE.to_vec();
        pairs[2] = ("JWT_SECRET", "too-short");
        let error = settings(&pairs).expect_err("short secret");
        assert_eq!(error.variable, "JWT_SECRET");
        assert!(error.to_string().contains("at least 32 bytes"));
    }

    #[test]
    fn invalid_values_are_named() {
        for (variable, value) in [
            ("API_ADDR", "nonsense"),
            ("LOG_FORMAT", "xml"),
            ("IMPORT_MAX_BYTES", "-5"),
            ("STORAGE_URL", "ftp://x"),
            ("SMTP_URL", "mail.example.com"),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push((variable, value));
            let error = settings(&pairs).expect_err(variable);
            assert_eq!(error.variable, variable);
        }
    }
}
