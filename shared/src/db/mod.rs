//! Postgres: the pool, migrations, tenant-scoped transactions and one repository module per aggregate.
//!
//! Every tenant-owned repository function takes the connection first (the caller owns the transaction) and
//! the `TenantId` second, and filters by it. Underneath, each tenant transaction runs as the non-owner role
//! `crm_app` with `app.tenant_id` set, so row-level security hides other tenants even from a query that forgot
//! its filter.

pub mod audit;
pub mod emails;
pub mod events;
pub mod export_templates;
pub mod exports;
pub mod import_lookups;
pub mod import_writes;
pub mod imports;
pub mod jobs;
pub mod maintenance;
pub mod records;
pub mod reports;
pub mod rollups;
pub mod schedules;
pub mod teams;
pub mod tenants;
pub mod users;
pub mod visibility;

use crate::config::Settings;
use crate::domain::enums::Role;
use crate::domain::records::TenantLocale;
use crate::domain::validation::parse_time_zone;
use crate::error::DomainError;
use crate::ids::{TenantId, UserId};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

pub use sqlx::PgConnection;

/// The schema, embedded so every binary knows which version it needs.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

pub type Tx = Transaction<'static, Postgres>;

/// A lazily connecting pool: processes start (and answer `/health`) while Postgres is still coming up.
pub fn pool(settings: &Settings) -> Result<PgPool, DomainError> {
    Ok(lazy_pool(settings, connect_options(settings)?.application_name("crm")))
}

fn connect_options(settings: &Settings) -> Result<PgConnectOptions, DomainError> {
    PgConnectOptions::from_str(settings.database_url())
        .map_err(|error| DomainError::Internal(anyhow::anyhow!("DATABASE_URL is not valid: {error}")))
}

fn lazy_pool(settings: &Settings, options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options)
}

/// How long a worker's transaction may sit idle before Postgres ends it: a frozen worker (SIGSTOP, a VM pause)
/// must not hold the row locks of its half-written batch past the heartbeat window (15 s), or the worker that
/// takes its job over would wait on them. Batches never pause this long between statements.
pub const JOB_IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The pool of a process that runs jobs: like `pool`, with `JOB_IDLE_IN_TRANSACTION_TIMEOUT` on every session.
pub fn job_pool(settings: &Settings) -> Result<PgPool, DomainError> {
    let options = connect_options(settings)?
        .application_name("crm-worker")
        .options([("idle_in_transaction_session_timeout", JOB_IDLE_IN_TRANSACTION_TIMEOUT.as_millis().to_string())]);
    Ok(lazy_pool(settings, options))
}

/// `VACUUM (ANALYZE)` of each of `tables`, one statement each (VACUUM runs outside a transaction). The names
/// are the callers' constants, never user input.
pub async fn vacuum_analyze(pool: &PgPool, tables: &[&'static str]) -> Result<(), DomainError> {
    for table in tables {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM (ANALYZE) {table}"))).execute(pool).await?;
    }
    Ok(())
}

/// Applies pending migrations. sqlx takes a Postgres advisory lock around the run, so concurrent callers
/// (two deploys, parallel tests) apply each migration once.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// True when every migration this binary was built with has been applied.
pub async fn schema_is_current(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let latest = MIGRATOR.iter().map(|migration| migration.version).max().unwrap_or(0);
    let applied: Option<i64> = sqlx::query_scalar(
        "SELECT max(version) FROM _sqlx_migrations WHERE success \
         AND EXISTS (SELECT 1 FROM pg_tables WHERE tablename = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await
    .or_else(|error| match &error {
        // The ledger does not exist yet: nothing has been migrated.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(None),
        _ => Err(error),
    })?;
    Ok(applied.unwrap_or(0) >= latest)
}

/// Waits until Postgres answers and the schema is current (the worker and scheduler never migrate).
pub async fn wait_for_schema(pool: &PgPool, shutdown: &tokio_util::sync::CancellationToken) -> bool {
    let mut delay = Duration::from_millis(200);
    loop {
        match schema_is_current(pool).await {
            Ok(true) => return true,
            Ok(false) => tracing::info!("waiting for `crm-api migrate` to bring the schema up to date"),
            Err(error) => tracing::warn!(error = %error, "waiting for Postgres"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Begins a transaction confined to one tenant by row-level security.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn begin_tenant(pool: &PgPool, tenant: TenantId) -> Result<Tx, DomainError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('role', 'crm_app', true), set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Confines the rest of an open transaction to one tenant (the CLI writes a new tenant's first admin so).
pub async fn enter_tenant(conn: &mut PgConnection, tenant: TenantId) -> Result<(), DomainError> {
    sqlx::query("SELECT set_config('role', 'crm_app', true), set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes a transaction-long advisory lock if it is free; false when another session holds it.
pub async fn try_transaction_lock(conn: &mut PgConnection, key: i64) -> Result<bool, DomainError> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(key).fetch_one(conn).await?)
}

/// Whether Postgres answers (readiness).
pub async fn ping(pool: &PgPool) -> Result<(), DomainError> {
    sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool).await?;
    Ok(())
}

/// A read-only tenant transaction that sees one snapshot throughout (an export's count and rows agree).
#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn begin_tenant_snapshot(pool: &PgPool, tenant: TenantId) -> Result<Tx, DomainError> {
    let mut tx = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    sqlx::query("SELECT set_config('role', 'crm_app', true), set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Confines an already acquired connection's new transaction to one tenant (for tools holding a connection).
pub async fn begin_tenant_on(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Transaction<'_, Postgres>, DomainError> {
    use sqlx::Acquire;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT set_config('role', 'crm_app', true), set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// What a request's user currently is, read at the start of its transaction.
#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    pub locale: TenantLocale,
    /// Bumped by logout, deactivation and reactivation: a token issued under an older version is dead.
    pub token_version: i32,
}

/// Begins a tenant transaction for a signed-in user, checking in the same round trip that the user still
/// exists and is active (a deactivated user's unexpired token stops working at once) and reading their
/// current role and the tenant's locale.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, user_id = %user))]
pub async fn begin_for_user(pool: &PgPool, tenant: TenantId, user: UserId) -> Result<(Tx, Session), DomainError> {
    let tx = pool.begin().await?;
    enter_as_user(tx, tenant, user).await
}

/// Like `begin_for_user`, but read-only and on one snapshot throughout, so a report's several statements
/// agree with each other however many writes land meanwhile.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, user_id = %user))]
pub async fn begin_snapshot_for_user(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
) -> Result<(Tx, Session), DomainError> {
    let tx = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    enter_as_user(tx, tenant, user).await
}

async fn enter_as_user(mut tx: Tx, tenant: TenantId, user: UserId) -> Result<(Tx, Session), DomainError> {
    // The row is read as the connecting owner, before the role switch takes effect for later statements.
    let row: Option<(String, String, String, i32)> = sqlx::query_as(
        "SELECT u.role, t.default_region, t.time_zone, u.token_version, \
                set_config('role', 'crm_app', true), set_config('app.tenant_id', $1::text, true) \
         FROM users u JOIN tenants t ON t.id = u.tenant_id \
         WHERE u.tenant_id = $1 AND u.id = $2 AND u.is_active",
    )
    .bind(tenant)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?
    .map(|(role, region, zone, version, _, _): (String, String, String, i32, String, String)| {
        (role, region, zone, version)
    });
    let Some((role, default_region, time_zone, token_version)) = row else {
        return Err(DomainError::Unauthorized("this account is no longer active; sign in again".into()));
    };
    let role = Role::parse(&role).ok_or_else(|| anyhow::anyhow!("unknown role {role:?} in users"))?;
    let time_zone = parse_time_zone(&time_zone).unwrap_or(chrono_tz::UTC);
    Ok((tx, Session { role, locale: TenantLocale { default_region, time_zone }, token_version }))
}
