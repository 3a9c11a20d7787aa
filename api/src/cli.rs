//! The `crm-api` commands besides `serve`: `migrate`, `create-tenant`, `seed-demo`.

use crm_shared::db::{self, tenants, users};
use crm_shared::domain::enums::Role;
use crm_shared::domain::validation::{self, parse_time_zone};
use crm_shared::password;
use crm_shared::{DomainError, TenantId, UserId};
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, clap::Parser)]
#[command(name = "crm-api", about = "The CRM's HTTP API and its administrative commands")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending migrations (idempotent; safe to run from several hosts at once).
    Migrate,
    /// Create a tenant and its first admin; prints {"tenant_id", "user_id"}.
    CreateTenant(CreateTenant),
    /// Create a demo tenant filled with realistic records; prints what was made.
    SeedDemo(SeedDemo),
}

#[derive(Debug, Clone, clap::Args)]
pub struct CreateTenant {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub admin_email: String,
    #[arg(long)]
    pub admin_password: String,
    /// Where phone numbers without a country code are (ISO 3166 code).
    #[arg(long, default_value = "US")]
    pub region: String,
    /// IANA time zone naive times are read in.
    #[arg(long, default_value = "UTC")]
    pub time_zone: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SeedDemo {
    #[arg(long, default_value = "Demo Company")]
    pub tenant_name: String,
    #[arg(long, default_value = "admin@demo.example")]
    pub admin_email: String,
    #[arg(long, default_value = "demo-password")]
    pub password: String,
    #[arg(long, default_value_t = 20_000)]
    pub leads: u64,
}

#[derive(Debug, Serialize)]
pub struct CreatedTenant {
    pub tenant_id: TenantId,
    pub user_id: UserId,
}

/// Creates a tenant with its first admin, in one transaction.
pub async fn create_tenant(pool: &PgPool, args: &CreateTenant) -> Result<CreatedTenant, DomainError> {
    let name = args.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(DomainError::field(
            "name",
            validation::ErrorCode::InvalidValue,
            "--name must be 1 to 200 characters",
        ));
    }
    let email = validation::email(args.admin_email.clone())
        .map_err(|invalid| DomainError::field("admin_email", invalid.0, format!("--admin-email: {}", invalid.1)))?
        .ok_or_else(|| {
            DomainError::field("admin_email", validation::ErrorCode::MissingRequired, "--admin-email is required")
        })?;
    if let Some(problem) = password::policy_problem(&args.admin_password, &args.admin_email) {
        return Err(DomainError::field(
            "admin_password",
            validation::ErrorCode::InvalidValue,
            format!("--admin-password {problem}"),
        ));
    }
    let region = args.region.trim().to_uppercase();
    if region.parse::<phonenumber::country::Id>().is_err() {
        return Err(DomainError::field(
            "region",
            validation::ErrorCode::InvalidValue,
            "--region must be an ISO 3166 country code",
        ));
    }
    if parse_time_zone(&args.time_zone).is_none() {
        return Err(DomainError::field(
            "time_zone",
            validation::ErrorCode::InvalidValue,
            "--time-zone must be an IANA zone such as Europe/Berlin",
        ));
    }
    let secret = args.admin_password.clone();
    let password_hash = tokio::task::spawn_blocking(move || password::hash(&secret))
        .await
        .map_err(|error| anyhow::anyhow!(error))??;

    let mut tx = pool.begin().await?;
    let tenant =
        tenants::create(&mut tx, &tenants::NewTenant { name, default_region: &region, time_zone: &args.time_zone })
            .await?;
    // The admin row goes in under the new tenant's row-level security, like every later write.
    db::enter_tenant(&mut tx, tenant).await?;
    let user = users::create(
        &mut tx,
        tenant,
        users::NewUser { email, name: "Administrator".into(), password_hash, role: Role::Admin, team_ids: vec![] },
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedTenant { tenant_id: tenant, user_id: UserId(user.id) })
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    db::migrate(pool).await?;
    Ok(())
}
