//! What the import job looks up for each batch: the importer's rights, the tenant's users, existing records
//! that a row's key matches, and a project's client. The record lookups read the owner-owned `*_import_keys`
//! views (migration 20261201000002), which confine themselves to the transaction's tenant, so the planner can
//! probe the key indexes even though the job runs as `crm_app` (see the migration for why the tables
//! themselves cannot be probed that way under row-level security).

use crate::domain::access::{self, Action, Entity, Scope};
use crate::domain::enums::Role;
use crate::error::DomainError;
use crate::ids::TenantId;
use sqlx::PgConnection;
use std::collections::HashSet;
use uuid::Uuid;

/// The user an import runs for, with what they may see and change (contract §3), read when the attempt starts.
#[derive(Debug, Clone)]
pub struct Importer {
    pub user_id: Uuid,
    pub role: Role,
    /// For a manager: the users of the manager's teams, the manager included.
    pub team_members: HashSet<Uuid>,
}

impl Importer {
    /// Whether the importer may `action` a record of `entity` created by `created_by` and assigned to `owner`.
    pub fn may(&self, entity: Entity, action: Action, created_by: Option<Uuid>, owner: Option<Uuid>) -> bool {
        let mine = |user: Option<Uuid>| user == Some(self.user_id);
        match access::scope(self.role, entity, action) {
            None => false,
            Some(Scope::Tenant) => true,
            Some(Scope::OwnOrAssigned) => mine(created_by) || mine(owner),
            Some(Scope::Teams) => {
                [created_by, owner].into_iter().flatten().any(|user| self.team_members.contains(&user))
            }
        }
    }
}

/// The importer as they are now; `None` when they no longer exist or were deactivated.
pub async fn importer(conn: &mut PgConnection, tenant: TenantId, user: Uuid) -> Result<Option<Importer>, DomainError> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM users WHERE tenant_id = $1 AND id = $2 AND is_active")
            .bind(tenant)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(role) = role.as_deref().and_then(Role::parse) else { return Ok(None) };
    // The same members the API's record scope uses for a manager.
    let sql = format!("{}$1 AND mine.user_id = $2", super::visibility::TEAM_MEMBERS);
    let team_members: Vec<Uuid> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(user).fetch_all(&mut *conn).await?;
    let mut team_members: HashSet<Uuid> = team_members.into_iter().collect();
    team_members.insert(user);
    Ok(Some(Importer { user_id: user, role, team_members }))
}

/// Active users of the tenant by lowercased email (an import's `assigned_to`).
pub async fn active_users(conn: &mut PgConnection, tenant: TenantId) -> Result<Vec<(String, Uuid)>, DomainError> {
    Ok(sqlx::query_as("SELECT lower(email), id FROM users WHERE tenant_id = $1 AND is_active")
        .bind(tenant)
        .fetch_all(conn)
        .await?)
}

/// A live record a row's key matched.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ExistingRecord {
    pub key: String,
    pub id: Uuid,
    pub created_by: Option<Uuid>,
    pub owner_id: Option<Uuid>,
}

/// One probe of the tenant's unique email index per key (lowercased emails), through the lookup view. A
/// join or `= ANY(...)` with thousands of keys lets the planner read the tenant's whole index instead.
pub const LEAD_EMAIL_LOOKUP: &str = "SELECT k.email AS key, t.id, t.created_by, t.owner_id \
     FROM UNNEST($1::text[]) AS k(email) \
     CROSS JOIN LATERAL (SELECT id, created_by, owner_id FROM lead_import_keys WHERE email_key = k.email LIMIT 1) t";

const CLIENT_EMAIL_LOOKUP: &str = "SELECT k.email AS key, t.id, t.created_by, t.owner_id \
     FROM UNNEST($1::text[]) AS k(email) \
     CROSS JOIN LATERAL (SELECT id, created_by, owner_id FROM client_import_keys \
                         WHERE has_email AND email_key = k.email LIMIT 1) t";

/// Live leads (`Entity::Lead`) or clients (`Entity::Client`) with these lowercased emails.
pub async fn existing_by_email(
    conn: &mut PgConnection,
    entity: Entity,
    emails: &[String],
) -> Result<Vec<ExistingRecord>, DomainError> {
    let sql = match entity {
        Entity::Client => CLIENT_EMAIL_LOOKUP,
        _ => LEAD_EMAIL_LOOKUP,
    };
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(emails).fetch_all(conn).await?)
}

/// Live projects by (client id, lowercased name); the key is `client_id \u{1f} name`.
pub async fn existing_projects(
    conn: &mut PgConnection,
    clients: &[Uuid],
    names: &[String],
) -> Result<Vec<ExistingRecord>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT k.client_id::text || chr(31) || k.name AS key, p.id, p.created_by, p.owner_id \
         FROM UNNEST($1::uuid[], $2::text[]) AS k(client_id, name) \
         CROSS JOIN LATERAL (SELECT id, created_by, owner_id FROM project_import_keys \
                             WHERE client_id = k.client_id AND name_key = k.name LIMIT 1) p",
    )
    .bind(clients)
    .bind(names)
    .fetch_all(conn)
    .await?)
}

/// A client a project row may name, by lowercased name or email.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClientMatch {
    pub id: Uuid,
    pub name_key: String,
    pub email_key: Option<String>,
    pub created_by: Option<Uuid>,
    pub owner_id: Option<Uuid>,
}

/// Live clients whose lowercased name or email is one of `keys`.
pub async fn clients_named(conn: &mut PgConnection, keys: &[String]) -> Result<Vec<ClientMatch>, DomainError> {
    Ok(sqlx::query_as(
        "SELECT id, name_key, email_key, created_by, owner_id FROM client_import_keys WHERE name_key = ANY($1) \
         UNION \
         SELECT id, name_key, email_key, created_by, owner_id FROM client_import_keys \
         WHERE has_email AND email_key = ANY($1)",
    )
    .bind(keys)
    .fetch_all(conn)
    .await?)
}
