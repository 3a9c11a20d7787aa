//! Tenants. Creating one happens before any tenant context exists, so it runs on the owner connection.

use crate::error::DomainError;
use crate::ids::{TenantId, new_id};
use sqlx::PgConnection;

pub struct NewTenant<'a> {
    pub name: &'a str,
    pub default_region: &'a str,
    pub time_zone: &'a str,
}

#[tracing::instrument(skip_all)]
pub async fn create(conn: &mut PgConnection, tenant: &NewTenant<'_>) -> Result<TenantId, DomainError> {
    let id = TenantId(new_id());
    sqlx::query("INSERT INTO tenants (id, name, default_region, time_zone) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(tenant.name)
        .bind(tenant.default_region)
        .bind(tenant.time_zone)
        .execute(conn)
        .await?;
    Ok(id)
}
