//! What a viewer may see: one predicate, shared by the record lists, exports and reports (and, through them,
//! scheduled reports), so a report can never count a record its reader could not open (contract §3).
//!
//! A record is visible to an admin when it is the tenant's; to a manager when it was created by, or is owned
//! by, the manager or a member of the manager's teams; to sales and readonly when they created it or own it.
//! "Owns" is the record's owner column (`assigned_to_user_id`, or an interaction's `user_id`).

use crate::domain::access::Scope;
use crate::ids::{TenantId, UserId};
use sqlx::{Postgres, QueryBuilder};

/// Who is asking, and which records they see.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    pub user_id: UserId,
    pub scope: Scope,
}

impl Viewer {
    /// What `user` sees as a sales rep: records they created or own (a report's `user_id` parameter).
    pub fn as_sales_rep(user: UserId) -> Viewer {
        Viewer { user_id: user, scope: Scope::OwnOrAssigned }
    }
}

/// The users whose records a manager sees: the manager and every member of the manager's teams.
pub(crate) const TEAM_MEMBERS: &str = "SELECT member.user_id FROM user_teams mine JOIN user_teams member \
     ON member.tenant_id = mine.tenant_id AND member.team_id = mine.team_id \
     WHERE mine.tenant_id = ";

/// Appends ` AND <visible>` for the row `alias`, whose creator is `alias.created_by` and whose owner is
/// `alias.<owner_column>`. Every name is a compile-time constant, never user input.
pub(crate) fn push_scope(
    qb: &mut QueryBuilder<Postgres>,
    alias: &str,
    owner_column: &str,
    tenant: TenantId,
    viewer: &Viewer,
) {
    match viewer.scope {
        Scope::Tenant => {}
        Scope::OwnOrAssigned => {
            qb.push(" AND (").push(alias).push(".created_by = ").push_bind(viewer.user_id);
            qb.push(" OR ").push(alias).push(".").push(owner_column).push(" = ").push_bind(viewer.user_id).push(")");
        }
        Scope::Teams => {
            for (index, column) in ["created_by", owner_column].into_iter().enumerate() {
                qb.push(if index == 0 { " AND (" } else { " OR " }).push(alias).push(".").push(column).push(" IN (");
                push_team_members(qb, tenant, viewer.user_id);
                qb.push(")");
            }
            qb.push(")");
        }
    }
}

/// `SELECT user_id ...` of the manager `manager` and every member of their teams.
pub(crate) fn push_team_members(qb: &mut QueryBuilder<Postgres>, tenant: TenantId, manager: UserId) {
    qb.push(TEAM_MEMBERS).push_bind(tenant).push(" AND mine.user_id = ").push_bind(manager);
    qb.push(" UNION ALL SELECT ").push_bind(manager).push("::uuid");
}
