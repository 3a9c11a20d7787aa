//! Everything two or more of the binaries need: settings, telemetry, the domain (entities, enumerations,
//! validation, access rules), the repositories over Postgres, job definitions and the shutdown primitive.

pub mod config;
pub mod cron_time;
pub mod csv_safety;
pub mod dashboard_cache;
pub mod db;
pub mod domain;
pub mod email;
pub mod error;
pub mod exports;
pub mod ids;
pub mod imports;
pub mod jobs;
pub mod maintenance;
pub mod password;
pub mod redis_conn;
pub mod report_run;
pub mod seed;
pub mod shutdown;
pub mod signed_links;
pub mod startup;
pub mod storage;
pub mod telemetry;

pub use error::DomainError;
pub use ids::{TenantId, UserId};
pub mod worker_registry;
