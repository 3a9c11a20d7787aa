//! The columns each entity exports: their names (what callers, templates and file headers use), how each is
//! read (an SQL expression over the record `r` and the joins it needs) and what kind of value it is. References
//! are written as people read them, never as ids: a user as their email, a client as its name, a lead as its
//! full name. The default columns are the entity's import columns, so an exported file imports back unchanged.

use crate::domain::access::Entity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    /// A `timestamptz`: ISO 8601 with the tenant's UTC offset in CSV and PDF, a date-time cell in XLSX.
    Timestamp,
    /// A `date`: `YYYY-MM-DD`.
    Date,
    /// A `numeric(14, 2)`: two decimals.
    Money,
}

/// A join a column needs; joins shared by several columns are added once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Join(pub &'static str);

#[derive(Debug)]
pub struct ExportColumn {
    pub name: &'static str,
    pub sql: &'static str,
    pub kind: ColumnKind,
    pub join: Option<Join>,
}

const OWNER: Join = Join("LEFT JOIN users owner ON owner.id = r.assigned_to_user_id");
const CREATOR: Join = Join("LEFT JOIN users creator ON creator.id = r.created_by");

const fn text(name: &'static str, sql: &'static str) -> ExportColumn {
    ExportColumn { name, sql, kind: ColumnKind::Text, join: None }
}

const fn timestamp(name: &'static str, sql: &'static str) -> ExportColumn {
    ExportColumn { name, sql, kind: ColumnKind::Timestamp, join: None }
}

const fn joined(name: &'static str, sql: &'static str, join: Join) -> ExportColumn {
    ExportColumn { name, sql, kind: ColumnKind::Text, join: Some(join) }
}

const COMMON: [ExportColumn; 4] = [
    text("id", "r.id::text"),
    joined("created_by", "creator.email", CREATOR),
    timestamp("created_at", "r.created_at"),
    timestamp("updated_at", "r.updated_at"),
];

const LEADS: &[ExportColumn] = &[
    text("first_name", "r.first_name"),
    text("last_name", "r.last_name"),
    text("email", "r.email"),
    text("phone", "r.phone"),
    text("company", "r.company"),
    text("lead_source", "r.lead_source"),
    text("status", "r.status"),
    joined("assigned_to", "owner.email", OWNER),
    text("notes", "r.notes"),
    timestamp("converted_at", "r.converted_at"),
];

const CLIENTS: &[ExportColumn] = &[
    text("name", "r.name"),
    text("email", "r.email"),
    text("phone", "r.phone"),
    text("status", "r.status"),
    text("industry", "r.industry"),
    joined("assigned_to", "owner.email", OWNER),
];

const PROJECTS: &[ExportColumn] = &[
    joined("client", "client.name", Join("LEFT JOIN clients client ON client.id = r.client_id")),
    text("name", "r.name"),
    text("status", "r.status"),
    ExportColumn { name: "value", sql: "r.value", kind: ColumnKind::Money, join: None },
    ExportColumn { name: "start_date", sql: "r.start_date", kind: ColumnKind::Date, join: None },
    ExportColumn { name: "close_date", sql: "r.close_date", kind: ColumnKind::Date, join: None },
    joined("assigned_to", "owner.email", OWNER),
];

const INTERACTIONS: &[ExportColumn] = &[
    text("type", "r.type"),
    timestamp("contact_date", "r.contact_date"),
    joined(
        "lead",
        "concat_ws(' ', lead.first_name, lead.last_name)",
        Join("LEFT JOIN leads lead ON lead.id = r.lead_id"),
    ),
    joined("client", "client.name", Join("LEFT JOIN clients client ON client.id = r.client_id")),
    joined("user", "actor.email", Join("LEFT JOIN users actor ON actor.id = r.user_id")),
    text("notes", "r.notes"),
    timestamp("follow_up_at", "r.follow_up_at"),
    timestamp("completed_at", "r.completed_at"),
];

const TICKETS: &[ExportColumn] = &[
    text("subject", "r.subject"),
    text("description", "r.description"),
    text("category", "r.category"),
    text("priority", "r.priority"),
    text("status", "r.status"),
    text("queue", "r.queue"),
    joined("assigned_to", "owner.email", OWNER),
    timestamp("closed_at", "r.closed_at"),
];

/// Every column `entity` can export, its own first, then `id`, `created_by`, `created_at`, `updated_at`.
pub fn all(entity: Entity) -> impl Iterator<Item = &'static ExportColumn> {
    let own = match entity {
        Entity::Lead => LEADS,
        Entity::Client => CLIENTS,
        Entity::Project => PROJECTS,
        Entity::Interaction => INTERACTIONS,
        Entity::Ticket => TICKETS,
    };
    own.iter().chain(COMMON.iter())
}

/// The columns an export has when the caller names none: the entity's import columns (for leads, clients and
/// projects), so the file imports back as it is; the entity's own columns and `created_at` otherwise.
pub fn defaults(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::Lead => &[
            "first_name",
            "last_name",
            "email",
            "phone",
            "company",
            "lead_source",
            "status",
            "created_at",
            "assigned_to",
            "notes",
        ],
        Entity::Client => &["name", "email", "phone", "status", "industry", "assigned_to", "created_at"],
        Entity::Project => {
            &["client", "name", "status", "value", "start_date", "close_date", "assigned_to", "created_at"]
        }
        Entity::Interaction => {
            &["type", "contact_date", "lead", "client", "user", "notes", "follow_up_at", "completed_at", "created_at"]
        }
        Entity::Ticket => &[
            "subject",
            "description",
            "category",
            "priority",
            "status",
            "queue",
            "assigned_to",
            "closed_at",
            "created_at",
        ],
    }
}

/// Looks the named columns up, in order; `Err` lists the unknown names and what is allowed.
pub fn resolve(entity: Entity, names: &[String]) -> Result<Vec<&'static ExportColumn>, String> {
    let mut found = Vec::with_capacity(names.len());
    let mut unknown = Vec::new();
    for name in names {
        match all(entity).find(|column| column.name == name.trim()) {
            Some(column) if !found.iter().any(|seen: &&ExportColumn| seen.name == column.name) => found.push(column),
            Some(column) => return Err(format!("{:?} is named twice", column.name)),
            None => unknown.push(format!("{name:?}")),
        }
    }
    if !unknown.is_empty() {
        let allowed: Vec<&str> = all(entity).map(|column| column.name).collect();
        return Err(format!("unknown {}; the columns are: {}", unknown.join(", "), allowed.join(", ")));
    }
    if found.is_empty() {
        return Err("name at least one column".into());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_column_exists_and_names_are_unique() {
        for entity in [Entity::Lead, Entity::Client, Entity::Project, Entity::Interaction, Entity::Ticket] {
            let names: Vec<String> = defaults(entity).iter().map(|name| (*name).to_owned()).collect();
            assert_eq!(resolve(entity, &names).map(|columns| columns.len()), Ok(names.len()), "{entity:?}");
            let mut all_names: Vec<&str> = all(entity).map(|column| column.name).collect();
            all_names.sort_unstable();
            let before = all_names.len();
            all_names.dedup();
            assert_eq!(before, all_names.len(), "{entity:?}");
        }
    }

    #[test]
    fn unknown_and_repeated_columns_are_named() {
        let problem = resolve(Entity::Lead, &["email".into(), "password".into()]).expect_err("unknown");
        assert!(problem.contains("\"password\"") && problem.contains("first_name"), "{problem}");
        let twice = resolve(Entity::Lead, &["email".into(), "email".into()]).expect_err("twice");
        assert!(twice.contains("twice"), "{twice}");
    }
}
