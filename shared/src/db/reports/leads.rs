//! Lead figures, read from the lead rollup plus its pending deltas: pipeline by status, lead sources and
//! conversion. Groups are small (statuses × sources × people), so each report adds them up in one pass.

use super::{DayRange, ReportScope, average, email_order, percent};
use crate::domain::enums::{LeadSource, LeadStatus};
use crate::error::DomainError;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;
use uuid::Uuid;

/// The rollup and the deltas not yet folded into it, read as one table in one statement (one snapshot: a fold
/// moving deltas into the rollup meanwhile is seen entirely or not at all).
const LEAD_FIGURES: &str = "(SELECT tenant_id, grain, bucket, created_by, assigned_to_user_id, status, lead_source, \
     leads, timed_conversions, conversion_seconds FROM lead_rollup \
     UNION ALL SELECT tenant_id, grain, bucket, created_by, assigned_to_user_id, status, lead_source, \
     leads, timed_conversions, conversion_seconds FROM lead_rollup_deltas) l";

/// Which person a group of leads is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadPerson {
    /// The owner: the assignee, or the creator when unassigned.
    Owner,
    /// The assignee (`None` for unassigned leads).
    Assignee,
    /// Nobody: one group per status and source.
    Nobody,
}

/// Live leads of one (person, status, source), created in the range.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeadGroup {
    pub person: Option<Uuid>,
    pub status: String,
    pub lead_source: Option<String>,
    pub leads: i64,
    /// Leads with a `converted_at`, and the seconds from `created_at` to it, summed over them.
    pub timed_conversions: i64,
    pub conversion_seconds: Decimal,
}

/// The caller's visible live leads created in `range`, grouped by `person`, status and source.
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant))]
pub async fn lead_groups(
    conn: &mut PgConnection,
    scope: &ReportScope,
    range: DayRange,
    person: LeadPerson,
) -> Result<Vec<LeadGroup>, DomainError> {
    let person_column = match person {
        LeadPerson::Owner => "COALESCE(l.assigned_to_user_id, l.created_by)",
        LeadPerson::Assignee => "l.assigned_to_user_id",
        LeadPerson::Nobody => "NULL::uuid",
    };
    let slices = super::slices::slices(range);
    let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {person_column} AS person, l.status, l.lead_source, "));
    let signed = |qb: &mut QueryBuilder<Postgres>, measure: &str, cast: &str| {
        qb.push("sum(");
        super::slices::push_sign(qb, "l", &slices);
        qb.push(format!(" * l.{measure}){cast}"));
    };
    signed(&mut qb, "leads", "::bigint AS leads, ");
    signed(&mut qb, "timed_conversions", "::bigint AS timed_conversions, ");
    signed(&mut qb, "conversion_seconds", " AS conversion_seconds");
    qb.push(format!(" FROM {LEAD_FIGURES} WHERE l.tenant_id = "));
    qb.push_bind(scope.tenant);
    super::slices::push_filter(&mut qb, "l", &slices);
    super::push_scope(&mut qb, "l", "assigned_to_user_id", scope.tenant, &scope.viewer);
    qb.push(" GROUP BY 1, 2, 3 HAVING ");
    signed(&mut qb, "leads", " <> 0");
    Ok(qb.build_query_as().fetch_all(conn).await?)
}

/// Visible live leads created on each day from `first_day` on (days without leads are absent).
pub async fn leads_per_day(
    conn: &mut PgConnection,
    scope: &ReportScope,
    first_day: NaiveDate,
) -> Result<Vec<(NaiveDate, i64)>, DomainError> {
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "SELECT l.bucket, sum(l.leads)::bigint FROM {LEAD_FIGURES} WHERE l.tenant_id = "
    ));
    qb.push_bind(scope.tenant).push(" AND l.grain = 2 AND l.bucket >= ").push_bind(first_day);
    super::push_scope(&mut qb, "l", "assigned_to_user_id", scope.tenant, &scope.viewer);
    qb.push(" GROUP BY 1 ORDER BY 1");
    Ok(qb.build_query_as().fetch_all(conn).await?)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusCount {
    #[schema(value_type = LeadStatus)]
    pub status: String,
    pub count: i64,
}

/// Leads per status, every status in contract order, zeros included.
pub fn by_status(groups: &[LeadGroup]) -> Vec<StatusCount> {
    LeadStatus::ALL
        .iter()
        .map(|status| StatusCount {
            status: status.as_str().to_owned(),
            count: groups.iter().filter(|group| group.status == status.as_str()).map(|group| group.leads).sum(),
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeadSourceReport {
    pub sources: Vec<SourceFigures>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourceFigures {
    /// `null` for leads without a source.
    #[schema(value_type = Option<LeadSource>)]
    pub source: Option<String>,
    pub total_leads: i64,
    /// Leads whose status is `converted` now.
    pub converted: i64,
    /// Leads whose status is `qualified` now.
    pub qualified: i64,
    /// converted / total_leads, in percent, 2 decimals.
    pub conversion_rate: f64,
}

/// One entry per source with leads, by `total_leads` descending, then source (no source last).
pub fn lead_sources(groups: &[LeadGroup]) -> LeadSourceReport {
    let mut by_source: BTreeMap<Option<String>, (i64, i64, i64)> = BTreeMap::new();
    for group in groups {
        let entry = by_source.entry(group.lead_source.clone()).or_default();
        entry.0 += group.leads;
        if group.status == LeadStatus::Converted.as_str() {
            entry.1 += group.leads;
        }
        if group.status == LeadStatus::Qualified.as_str() {
            entry.2 += group.leads;
        }
    }
    let mut sources: Vec<SourceFigures> = by_source
        .into_iter()
        .filter(|(_, (total, _, _))| *total > 0)
        .map(|(source, (total, converted, qualified))| SourceFigures {
            source,
            total_leads: total,
            converted,
            qualified,
            conversion_rate: percent(converted, total),
        })
        .collect();
    sources.sort_by(|a, b| {
        b.total_leads
            .cmp(&a.total_leads)
            .then_with(|| a.source.is_none().cmp(&b.source.is_none()))
            .then_with(|| a.source.cmp(&b.source))
    });
    LeadSourceReport { sources }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversionReport {
    pub overall: ConversionOverall,
    pub by_user: Vec<UserConversion>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversionOverall {
    pub total_leads: i64,
    pub converted: i64,
    pub conversion_rate: f64,
    /// Days from `created_at` to `converted_at`, averaged over converted leads that have a `converted_at`;
    /// `null` when there are none.
    pub avg_days_to_convert: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserConversion {
    /// The owner (assignee, or creator when unassigned); `null` for leads with neither.
    pub user_id: Option<Uuid>,
    pub user_email: Option<String>,
    pub total_leads: i64,
    pub converted: i64,
    pub conversion_rate: f64,
}

const SECONDS_PER_DAY: i64 = 86_400;

/// Conversion overall and per owner (`groups` by `LeadPerson::Owner`), by converted descending, then email.
pub fn conversion(groups: &[LeadGroup], emails: &HashMap<Uuid, String>) -> ConversionReport {
    let converted_status = LeadStatus::Converted.as_str();
    let total: i64 = groups.iter().map(|group| group.leads).sum();
    let converted_groups = || groups.iter().filter(|group| group.status == converted_status);
    let converted: i64 = converted_groups().map(|group| group.leads).sum();
    let timed: i64 = converted_groups().map(|group| group.timed_conversions).sum();
    let seconds: Decimal = converted_groups().map(|group| group.conversion_seconds).sum();
    let overall = ConversionOverall {
        total_leads: total,
        converted,
        conversion_rate: percent(converted, total),
        avg_days_to_convert: average(seconds / Decimal::from(SECONDS_PER_DAY), timed),
    };
    let by_user = per_person(groups)
        .into_iter()
        .map(|(person, figures)| UserConversion {
            user_id: person,
            user_email: person.and_then(|id| emails.get(&id).cloned()),
            total_leads: figures.total,
            converted: figures.converted,
            conversion_rate: percent(figures.converted, figures.total),
        })
        .collect::<Vec<_>>();
    let mut by_user = by_user;
    by_user.sort_by(|a, b| {
        b.converted
            .cmp(&a.converted)
            .then_with(|| email_order(&(a.user_email.clone(), a.user_id), &(b.user_email.clone(), b.user_id)))
    });
    ConversionReport { overall, by_user }
}

/// A person's leads: all, in the pipeline (new, contacted, qualified), converted.
#[derive(Debug, Clone, Copy, Default)]
pub struct PersonFigures {
    pub total: i64,
    pub in_pipeline: i64,
    pub converted: i64,
}

pub fn is_in_pipeline(status: &str) -> bool {
    [LeadStatus::New, LeadStatus::Contacted, LeadStatus::Qualified].iter().any(|open| open.as_str() == status)
}

/// Figures per person of `groups`, people with no leads left out.
pub fn per_person(groups: &[LeadGroup]) -> HashMap<Option<Uuid>, PersonFigures> {
    let mut people: HashMap<Option<Uuid>, PersonFigures> = HashMap::new();
    for group in groups {
        let figures = people.entry(group.person).or_default();
        figures.total += group.leads;
        if is_in_pipeline(&group.status) {
            figures.in_pipeline += group.leads;
        }
        if group.status == LeadStatus::Converted.as_str() {
            figures.converted += group.leads;
        }
    }
    people.retain(|_, figures| figures.total != 0);
    people
}
