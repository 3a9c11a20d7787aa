//! Who may read and write what (contract §3). Access is decided in two steps: whether the role may touch the
//! entity at all (else 403), and which of its records it sees (else 404, as if the record did not exist).

use super::enums::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Lead,
    Client,
    Project,
    Interaction,
    Ticket,
}

impl Entity {
    pub fn name(self) -> &'static str {
        match self {
            Entity::Lead => "lead",
            Entity::Client => "client",
            Entity::Project => "project",
            Entity::Interaction => "interaction",
            Entity::Ticket => "ticket",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
}

/// Which records of an entity a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every record of the tenant.
    Tenant,
    /// Records created by, or assigned to, any member of the caller's teams (or the caller).
    Teams,
    /// Records the caller created or that are assigned to the caller.
    OwnOrAssigned,
}

/// The scope a role gets for an action on an entity, or `None` when the role may not do it at all.
pub fn scope(role: Role, entity: Entity, action: Action) -> Option<Scope> {
    use {Action::*, Entity::*};
    match role {
        Role::Admin => Some(Scope::Tenant),
        Role::Manager => Some(Scope::Teams),
        Role::Sales => Some(Scope::OwnOrAssigned),
        Role::Readonly => (action == Read).then_some(Scope::OwnOrAssigned),
        Role::Support => match (entity, action) {
            (Ticket, _) => Some(Scope::Tenant),
            (Lead | Client, Read) => Some(Scope::Tenant),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readonly_reads_like_sales_and_never_writes() {
        for entity in [Entity::Lead, Entity::Client, Entity::Project, Entity::Interaction, Entity::Ticket] {
            assert_eq!(scope(Role::Readonly, entity, Action::Read), scope(Role::Sales, entity, Action::Read));
            assert_eq!(scope(Role::Readonly, entity, Action::Write), None);
        }
    }

    #[test]
    fn support_handles_all_tickets_and_only_reads_leads_and_clients() {
        assert_eq!(scope(Role::Support, Entity::Ticket, Action::Write), Some(Scope::Tenant));
        assert_eq!(scope(Role::Support, Entity::Lead, Action::Read), Some(Scope::Tenant));
        assert_eq!(scope(Role::Support, Entity::Client, Action::Write), None);
        assert_eq!(scope(Role::Support, Entity::Project, Action::Read), None);
        assert_eq!(scope(Role::Support, Entity::Interaction, Action::Read), None);
    }

    #[test]
    fn admin_sees_the_tenant_manager_the_teams_sales_their_own() {
        assert_eq!(scope(Role::Admin, Entity::Lead, Action::Write), Some(Scope::Tenant));
        assert_eq!(scope(Role::Manager, Entity::Lead, Action::Read), Some(Scope::Teams));
        assert_eq!(scope(Role::Sales, Entity::Project, Action::Write), Some(Scope::OwnOrAssigned));
    }
}
