//! The CRM records (leads, clients, projects, interactions, tickets) share one shape: tenant, owner, soft
//! delete, filters, sort and search. The generic queries live here; each entity module adds its row type,
//! insert and update.

pub mod clients;
pub mod interactions;
pub mod leads;
pub mod projects;
mod stored_query;
pub mod tickets;

use crate::domain::access::Entity;
use crate::error::DomainError;
use crate::ids::TenantId;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

/// How an entity's table is queried. Every name here is a compile-time constant, never user input.
#[derive(Debug)]
pub struct RecordTable {
    pub entity: Entity,
    pub table: &'static str,
    /// The select list, every column qualified with `r.`.
    pub columns: &'static str,
    /// The column naming the user a record is assigned to.
    pub owner_column: &'static str,
    /// Columns `q` searches (case-insensitive substring).
    pub search_columns: &'static [&'static str],
    /// Columns a list may be sorted by.
    pub sort_columns: &'static [&'static str],
    /// The sortable columns that may be NULL. Only these get `NULLS LAST` when descending: on a NOT NULL
    /// column the clause would stop Postgres from reading the index backwards and make it sort every row.
    pub nullable_sort_columns: &'static [&'static str],
}

/// The table of an entity.
pub fn table_of(entity: Entity) -> &'static RecordTable {
    match entity {
        Entity::Lead => &leads::LEADS,
        Entity::Client => &clients::CLIENTS,
        Entity::Project => &projects::PROJECTS,
        Entity::Interaction => &interactions::INTERACTIONS,
        Entity::Ticket => &tickets::TICKETS,
    }
}

pub use super::visibility::Viewer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: &'static str,
    pub descending: bool,
}

#[derive(Debug, Clone)]
pub enum Filter {
    /// `column = ANY(values)`.
    TextIn(&'static str, Vec<String>),
    UuidEq(&'static str, Uuid),
    From(&'static str, DateTime<Utc>),
    To(&'static str, DateTime<Utc>),
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub limit: i64,
    pub offset: i64,
    pub include_total: bool,
    pub sort: Sort,
    pub search: Option<String>,
    /// The trash (soft-deleted records) instead of live ones.
    pub trash: bool,
    pub filters: Vec<Filter>,
}

pub struct Page<T> {
    pub items: Vec<T>,
    pub total: Option<i64>,
}

/// `WHERE` for one tenant's live (or trashed) records visible to the viewer.
fn push_visible(qb: &mut QueryBuilder<Postgres>, table: &RecordTable, tenant: TenantId, viewer: &Viewer, trash: bool) {
    qb.push(" WHERE r.tenant_id = ").push_bind(tenant);
    qb.push(if trash { " AND r.deleted_at IS NOT NULL" } else { " AND r.deleted_at IS NULL" });
    super::visibility::push_scope(qb, "r", table.owner_column, tenant, viewer);
}

fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    escaped.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

fn push_filters(qb: &mut QueryBuilder<Postgres>, table: &RecordTable, query: &ListQuery) {
    for filter in &query.filters {
        match filter {
            // One value is a plain equality: Postgres 15 cannot read an index in order through `= ANY`.
            Filter::TextIn(column, values) if values.len() == 1 => {
                qb.push(" AND r.").push(*column).push(" = ").push_bind(values[0].clone());
            }
            Filter::TextIn(column, values) => {
                qb.push(" AND r.").push(*column).push(" = ANY(").push_bind(values.clone()).push(")");
            }
            Filter::UuidEq(column, value) => {
                qb.push(" AND r.").push(*column).push(" = ").push_bind(*value);
            }
            Filter::From(column, at) => {
                qb.push(" AND r.").push(*column).push(" >= ").push_bind(*at);
            }
            Filter::To(column, at) => {
                qb.push(" AND r.").push(*column).push(" < ").push_bind(*at);
            }
        }
    }
    if let Some(search) = query.search.as_deref().filter(|text| !text.trim().is_empty()) {
        let pattern = escape_like(search.trim());
        for (index, column) in table.search_columns.iter().enumerate() {
            qb.push(if index == 0 { " AND (r." } else { " OR r." });
            qb.push(*column).push(" ILIKE ").push_bind(pattern.clone()).push(" ESCAPE '\\'");
        }
        qb.push(")");
    }
}

fn push_order(qb: &mut QueryBuilder<Postgres>, table: &RecordTable, sort: Sort) {
    let direction = if sort.descending { " DESC" } else { " ASC" };
    qb.push(" ORDER BY r.").push(sort.column).push(direction);
    // Empty values last either way (ascending puts them last already).
    if sort.descending && table.nullable_sort_columns.contains(&sort.column) {
        qb.push(" NULLS LAST");
    }
    // The id breaks ties, so pages never overlap.
    qb.push(", r.id").push(direction);
}

/// What an export streams: the list's own query (the same visibility, filters, search and order, built by the
/// same functions) without paging, selecting `select` from the record `r` and the `joins` it names.
pub fn export_query(
    table: &RecordTable,
    tenant: TenantId,
    viewer: &Viewer,
    query: &ListQuery,
    select: &str,
    joins: &[&str],
) -> QueryBuilder<Postgres> {
    let mut qb = QueryBuilder::new(format!("SELECT {select} FROM {} r", table.table));
    for join in joins {
        qb.push(" ").push(*join);
    }
    push_visible(&mut qb, table, tenant, viewer, query.trash);
    push_filters(&mut qb, table, query);
    push_order(&mut qb, table, query.sort);
    qb
}

/// How many records the list's query matches (an export's progress total).
pub async fn count_matching(
    conn: &mut PgConnection,
    tenant: TenantId,
    table: &RecordTable,
    viewer: &Viewer,
    query: &ListQuery,
) -> Result<i64, DomainError> {
    let mut count = QueryBuilder::new(format!("SELECT count(*) FROM {} r", table.table));
    push_visible(&mut count, table, tenant, viewer, query.trash);
    push_filters(&mut count, table, query);
    Ok(count.build_query_scalar::<i64>().fetch_one(conn).await?)
}

/// One page of records, newest first unless sorted otherwise.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, table = table.table))]
pub async fn list<T>(
    conn: &mut PgConnection,
    tenant: TenantId,
    table: &RecordTable,
    viewer: &Viewer,
    query: &ListQuery,
) -> Result<Page<T>, DomainError>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let mut qb = QueryBuilder::new(format!("SELECT {} FROM {} r", table.columns, table.table));
    push_visible(&mut qb, table, tenant, viewer, query.trash);
    push_filters(&mut qb, table, query);
    push_order(&mut qb, table, query.sort);
    qb.push(" LIMIT ").push_bind(query.limit).push(" OFFSET ").push_bind(query.offset);
    let items = qb.build_query_as::<T>().fetch_all(&mut *conn).await?;

    let total =
        if query.include_total { Some(count_matching(conn, tenant, table, viewer, query).await?) } else { None };
    Ok(Page { items, total })
}

/// One visible record (`trash` selects a soft-deleted one), or `None`: missing, another tenant's, and not
/// visible all look the same.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, table = table.table, id = %id))]
pub async fn get<T>(
    conn: &mut PgConnection,
    tenant: TenantId,
    table: &RecordTable,
    viewer: &Viewer,
    id: Uuid,
    trash: bool,
) -> Result<Option<T>, DomainError>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let mut qb = QueryBuilder::new(format!("SELECT {} FROM {} r", table.columns, table.table));
    push_visible(&mut qb, table, tenant, viewer, trash);
    qb.push(" AND r.id = ").push_bind(id);
    Ok(qb.build_query_as::<T>().fetch_optional(conn).await?)
}

/// Whether the record exists, is live and is visible to the viewer.
pub async fn is_visible(
    conn: &mut PgConnection,
    tenant: TenantId,
    table: &RecordTable,
    viewer: &Viewer,
    id: Uuid,
) -> Result<bool, DomainError> {
    let mut qb = QueryBuilder::new(format!("SELECT EXISTS (SELECT 1 FROM {} r", table.table));
    push_visible(&mut qb, table, tenant, viewer, false);
    qb.push(" AND r.id = ").push_bind(id).push(")");
    Ok(qb.build_query_scalar().fetch_one(conn).await?)
}

/// Moves a visible record to the trash. False when there was nothing to delete.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, table = table.table, id = %id))]
pub async fn soft_delete(
    conn: &mut PgConnection,
    tenant: TenantId,
    table: &RecordTable,
    viewer: &Viewer,
    id: Uuid,
) -> Result<bool, DomainError> {
    let mut qb = QueryBuilder::new(format!("UPDATE {} r SET deleted_at = now(), updated_at = now()", table.table));
    push_visible(&mut qb, table, tenant, viewer, false);
    qb.push(" AND r.id = ").push_bind(id);
    Ok(qb.build().execute(conn).await?.rows_affected() == 1)
}

/// Brings a visible record back from the trash (409 when a live record has taken its email meanwhile).
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, table = table.table, id = %id))]
pub async fn restore<T>(
    conn: &mut PgConnection,
    tenant: TenantId,
    table: &RecordTable,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<T>, DomainError>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let mut qb = QueryBuilder::new(format!("UPDATE {} r SET deleted_at = NULL, updated_at = now()", table.table));
    push_visible(&mut qb, table, tenant, viewer, true);
    qb.push(" AND r.id = ").push_bind(id);
    qb.push(" RETURNING ").push(table.columns);
    Ok(qb.build_query_as::<T>().fetch_optional(conn).await?)
}

/// Starts `UPDATE <table> r SET updated_at = now()`; entity modules append `, column = value` pairs.
pub(crate) fn update_builder(table: &RecordTable) -> QueryBuilder<Postgres> {
    QueryBuilder::new(format!("UPDATE {} r SET updated_at = now()", table.table))
}

/// Appends `, column = value` for a change that is present.
pub(crate) fn set<T>(qb: &mut QueryBuilder<Postgres>, column: &'static str, change: Option<T>)
where
    T: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send + 'static,
{
    if let Some(value) = change {
        qb.push(", ").push(column).push(" = ").push_bind(value);
    }
}

/// Finishes an update: only a live record the viewer sees, returning it as it now is.
pub(crate) async fn finish_update<T>(
    mut qb: QueryBuilder<Postgres>,
    conn: &mut PgConnection,
    tenant: TenantId,
    table: &RecordTable,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<T>, DomainError>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    push_visible(&mut qb, table, tenant, viewer, false);
    qb.push(" AND r.id = ").push_bind(id);
    qb.push(" RETURNING ").push(table.columns);
    Ok(qb.build_query_as::<T>().fetch_optional(conn).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn search_patterns_escape_like_wildcards() {
        assert_eq!(super::escape_like("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
