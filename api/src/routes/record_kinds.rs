//! The five CRM record kinds: their filters, and how each is validated and stored.

use super::records::{RecordResource, Reference, enum_list, record_endpoints};
use super::{Data, ListResponse};
use crate::auth::AuthCtx;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::http::StatusCode;
use crm_shared::db::PgConnection;
use crm_shared::db::records::{
    Filter, RecordTable, Viewer,
    clients::{self, CLIENTS, ClientRow},
    interactions::{self, INTERACTIONS, InteractionRow},
    leads::{self, LEADS, LeadRow},
    projects::{self, PROJECTS, ProjectRow},
    tickets::{self, TICKETS, TicketRow},
};
use crm_shared::domain::enums::{
    ClientStatus, InteractionType, LeadSource, LeadStatus, ProjectStatus, TicketCategory, TicketPriority, TicketStatus,
};
use crm_shared::domain::records::{
    ClientCreate, ClientUpdate, InteractionCreate, InteractionUpdate, LeadCreate, LeadUpdate, ProjectCreate,
    ProjectUpdate, TenantLocale, TicketCreate, TicketUpdate,
};
use crm_shared::domain::validation::{Patch, Validator};
use crm_shared::{TenantId, UserId};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

fn push_in(filters: &mut Vec<Filter>, column: &'static str, values: Option<Vec<String>>) {
    if let Some(values) = values {
        filters.push(Filter::TextIn(column, values));
    }
}

fn push_uuid(filters: &mut Vec<Filter>, column: &'static str, value: Option<Uuid>) {
    if let Some(value) = value {
        filters.push(Filter::UuidEq(column, value));
    }
}

// ---------------------------------------------------------------- leads

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeadFilters {
    /// One or more statuses, comma-separated (`new,contacted`).
    pub status: Option<String>,
    /// One or more sources, comma-separated, matched case-insensitively.
    pub lead_source: Option<String>,
}

pub struct Leads;

impl RecordResource for Leads {
    type Row = LeadRow;
    type Create = LeadCreate;
    type Update = LeadUpdate;
    type Filters = LeadFilters;
    const TABLE: &'static RecordTable = &LEADS;

    fn filters(filters: LeadFilters, v: &mut Validator) -> Vec<Filter> {
        let mut out = Vec::new();
        push_in(
            &mut out,
            "status",
            enum_list(v, "status", filters.status, LeadStatus::parse, LeadStatus::allowed, LeadStatus::as_str),
        );
        push_in(
            &mut out,
            "lead_source",
            enum_list(
                v,
                "lead_source",
                filters.lead_source,
                LeadSource::parse,
                LeadSource::allowed,
                LeadSource::as_str,
            ),
        );
        out
    }

    fn insert<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        user: UserId,
        body: LeadCreate,
        locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<LeadRow, ApiError>> {
        async move { Ok(leads::insert(conn, tenant, user, body.validate(locale)?).await?) }.boxed()
    }

    fn update<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        viewer: Viewer,
        id: Uuid,
        body: LeadUpdate,
        locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<Option<LeadRow>, ApiError>> {
        async move { Ok(leads::update(conn, tenant, &viewer, id, body.validate(locale)?).await?) }.boxed()
    }
}

record_endpoints!(
    lead_endpoints,
    Leads,
    tag = "leads",
    collection = "/api/v1/leads",
    item = "/api/v1/leads/{id}",
    restore = "/api/v1/leads/{id}/restore",
    row = LeadRow,
    create = LeadCreate,
    update = LeadUpdate,
    filters = LeadFilters
);

// ---------------------------------------------------------------- clients

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientFilters {
    /// One or more statuses, comma-separated.
    pub status: Option<String>,
    /// Exact industry.
    pub industry: Option<String>,
}

pub struct Clients;

impl RecordResource for Clients {
    type Row = ClientRow;
    type Create = ClientCreate;
    type Update = ClientUpdate;
    type Filters = ClientFilters;
    const TABLE: &'static RecordTable = &CLIENTS;

    fn filters(filters: ClientFilters, v: &mut Validator) -> Vec<Filter> {
        let mut out = Vec::new();
        push_in(
            &mut out,
            "status",
            enum_list(v, "status", filters.status, ClientStatus::parse, ClientStatus::allowed, ClientStatus::as_str),
        );
        if let Some(industry) = filters.industry.filter(|value| !value.trim().is_empty()) {
            out.push(Filter::TextIn("industry", vec![industry.trim().to_owned()]));
        }
        out
    }

    fn insert<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        user: UserId,
        body: ClientCreate,
        locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<ClientRow, ApiError>> {
        async move { Ok(clients::insert(conn, tenant, user, body.validate(locale)?).await?) }.boxed()
    }

    fn update<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        viewer: Viewer,
        id: Uuid,
        body: ClientUpdate,
        locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<Option<ClientRow>, ApiError>> {
        async move { Ok(clients::update(conn, tenant, &viewer, id, body.validate(locale)?).await?) }.boxed()
    }
}

record_endpoints!(
    client_endpoints,
    Clients,
    tag = "clients",
    collection = "/api/v1/clients",
    item = "/api/v1/clients/{id}",
    restore = "/api/v1/clients/{id}/restore",
    row = ClientRow,
    create = ClientCreate,
    update = ClientUpdate,
    filters = ClientFilters
);

// ---------------------------------------------------------------- projects

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectFilters {
    /// One or more statuses, comma-separated (`completed` = won, `cancelled` = lost).
    pub status: Option<String>,
    pub client_id: Option<Uuid>,
}

pub struct Projects;

impl RecordResource for Projects {
    type Row = ProjectRow;
    type Create = ProjectCreate;
    type Update = ProjectUpdate;
    type Filters = ProjectFilters;
    const TABLE: &'static RecordTable = &PROJECTS;

    fn filters(filters: ProjectFilters, v: &mut Validator) -> Vec<Filter> {
        let mut out = Vec::new();
        push_in(
            &mut out,
            "status",
            enum_list(v, "status", filters.status, ProjectStatus::parse, ProjectStatus::allowed, ProjectStatus::as_str),
        );
        push_uuid(&mut out, "client_id", filters.client_id);
        out
    }

    fn references(body: &ProjectCreate) -> Vec<Reference> {
        body.client_id.map(|id| Reference { field: "client_id", table: &CLIENTS, id }).into_iter().collect()
    }

    fn update_references(body: &ProjectUpdate) -> Vec<Reference> {
        match body.client_id {
            Patch::Value(id) => vec![Reference { field: "client_id", table: &CLIENTS, id }],
            _ => Vec::new(),
        }
    }

    fn insert<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        user: UserId,
        body: ProjectCreate,
        _locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<ProjectRow, ApiError>> {
        async move { Ok(projects::insert(conn, tenant, user, body.validate()?).await?) }.boxed()
    }

    fn update<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        viewer: Viewer,
        id: Uuid,
        body: ProjectUpdate,
        _locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<Option<ProjectRow>, ApiError>> {
        async move { Ok(projects::update(conn, tenant, &viewer, id, body.validate()?).await?) }.boxed()
    }
}

record_endpoints!(
    project_endpoints,
    Projects,
    tag = "projects",
    collection = "/api/v1/projects",
    item = "/api/v1/projects/{id}",
    restore = "/api/v1/projects/{id}/restore",
    row = ProjectRow,
    create = ProjectCreate,
    update = ProjectUpdate,
    filters = ProjectFilters
);

// ---------------------------------------------------------------- interactions

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InteractionFilters {
    /// One or more types, comma-separated.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    pub lead_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
}

pub struct Interactions;

impl RecordResource for Interactions {
    type Row = InteractionRow;
    type Create = InteractionCreate;
    type Update = InteractionUpdate;
    type Filters = InteractionFilters;
    const TABLE: &'static RecordTable = &INTERACTIONS;

    fn filters(filters: InteractionFilters, v: &mut Validator) -> Vec<Filter> {
        let mut out = Vec::new();
        push_in(
            &mut out,
            "type",
            enum_list(
                v,
                "type",
                filters.kind,
                InteractionType::parse,
                InteractionType::allowed,
                InteractionType::as_str,
            ),
        );
        push_uuid(&mut out, "lead_id", filters.lead_id);
        push_uuid(&mut out, "client_id", filters.client_id);
        push_uuid(&mut out, "user_id", filters.user_id);
        out
    }

    fn references(body: &InteractionCreate) -> Vec<Reference> {
        let lead = body.lead_id.map(|id| Reference { field: "lead_id", table: &LEADS, id });
        let client = body.client_id.map(|id| Reference { field: "client_id", table: &CLIENTS, id });
        lead.into_iter().chain(client).collect()
    }

    fn update_references(body: &InteractionUpdate) -> Vec<Reference> {
        let mut references = Vec::new();
        if let Patch::Value(id) = body.lead_id {
            references.push(Reference { field: "lead_id", table: &LEADS, id });
        }
        if let Patch::Value(id) = body.client_id {
            references.push(Reference { field: "client_id", table: &CLIENTS, id });
        }
        references
    }

    fn insert<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        user: UserId,
        body: InteractionCreate,
        locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<InteractionRow, ApiError>> {
        async move { Ok(interactions::insert(conn, tenant, user, body.validate(locale)?).await?) }.boxed()
    }

    fn update<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        viewer: Viewer,
        id: Uuid,
        body: InteractionUpdate,
        locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<Option<InteractionRow>, ApiError>> {
        async move { Ok(interactions::update(conn, tenant, &viewer, id, body.validate(locale)?).await?) }.boxed()
    }
}

record_endpoints!(
    interaction_endpoints,
    Interactions,
    tag = "interactions",
    collection = "/api/v1/interactions",
    item = "/api/v1/interactions/{id}",
    restore = "/api/v1/interactions/{id}/restore",
    row = InteractionRow,
    create = InteractionCreate,
    update = InteractionUpdate,
    filters = InteractionFilters
);

// ---------------------------------------------------------------- tickets

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketFilters {
    /// One or more statuses, comma-separated.
    pub status: Option<String>,
    /// One or more priorities, comma-separated.
    pub priority: Option<String>,
    /// One or more categories, comma-separated.
    pub category: Option<String>,
    /// Exact queue name.
    pub queue: Option<String>,
}

pub struct Tickets;

impl RecordResource for Tickets {
    type Row = TicketRow;
    type Create = TicketCreate;
    type Update = TicketUpdate;
    type Filters = TicketFilters;
    const TABLE: &'static RecordTable = &TICKETS;

    fn filters(filters: TicketFilters, v: &mut Validator) -> Vec<Filter> {
        let mut out = Vec::new();
        push_in(
            &mut out,
            "status",
            enum_list(v, "status", filters.status, TicketStatus::parse, TicketStatus::allowed, TicketStatus::as_str),
        );
        push_in(
            &mut out,
            "priority",
            enum_list(
                v,
                "priority",
                filters.priority,
                TicketPriority::parse,
                TicketPriority::allowed,
                TicketPriority::as_str,
            ),
        );
        push_in(
            &mut out,
            "category",
            enum_list(
                v,
                "category",
                filters.category,
                TicketCategory::parse,
                TicketCategory::allowed,
                TicketCategory::as_str,
            ),
        );
        if let Some(queue) = filters.queue.filter(|value| !value.trim().is_empty()) {
            out.push(Filter::TextIn("queue", vec![queue.trim().to_owned()]));
        }
        out
    }

    fn insert<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        user: UserId,
        body: TicketCreate,
        locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<TicketRow, ApiError>> {
        async move {
            let row = tickets::insert(&mut *conn, tenant, user, body.validate(locale)?).await?;
            crate::notify::ticket_saved(conn, tenant, user, &row, None).await?;
            Ok(row)
        }
        .boxed()
    }

    fn update<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        viewer: Viewer,
        id: Uuid,
        body: TicketUpdate,
        locale: &'a TenantLocale,
    ) -> BoxFuture<'a, Result<Option<TicketRow>, ApiError>> {
        async move {
            let before = tickets::people(&mut *conn, tenant, id).await?.map(|ticket| ticket.assigned_to_user_id);
            let row = tickets::update(&mut *conn, tenant, &viewer, id, body.validate(locale)?).await?;
            if let (Some(row), Some(before)) = (&row, before) {
                crate::notify::ticket_saved(conn, tenant, viewer.user_id, row, Some(before)).await?;
            }
            Ok(row)
        }
        .boxed()
    }
}

record_endpoints!(
    ticket_endpoints,
    Tickets,
    tag = "tickets",
    collection = "/api/v1/tickets",
    item = "/api/v1/tickets/{id}",
    restore = "/api/v1/tickets/{id}/restore",
    row = TicketRow,
    create = TicketCreate,
    update = TicketUpdate,
    filters = TicketFilters
);
