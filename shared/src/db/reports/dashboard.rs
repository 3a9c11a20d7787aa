//! The dashboard's metrics per role (contract §8, "Reporting per role"): a pipeline view for admin, manager,
//! sales and readonly over what each sees, and a ticket view for support.

use super::leads::{LeadPerson, StatusCount, by_status, is_in_pipeline, lead_groups, leads_per_day, per_person};
use super::{DayRange, ReportScope, email_order};
use crate::domain::enums::{TicketPriority, TicketStatus};
use crate::error::DomainError;
use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// Days the chart covers, today included.
pub const CHART_DAYS: i64 = 30;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PipelineDashboard {
    pub total_leads: i64,
    /// Leads created since Monday 00:00 in the tenant's time zone.
    pub new_this_week: i64,
    /// Leads that are new, contacted or qualified.
    pub in_pipeline: i64,
    pub pipeline_by_stage: Vec<StatusCount>,
    pub tasks_due: TasksDue,
    /// Leads created per day over the last 30 days (today last), zeros included.
    pub chart_data: Vec<DayCount>,
    /// Per owner (admin and manager; `null` for other roles), by total leads descending, then email.
    pub per_user: Option<Vec<OwnerFigures>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TasksDue {
    /// Open follow-ups due between now and the end of today (tenant's time zone).
    pub today: i64,
    /// Open follow-ups whose time has passed.
    pub overdue: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DayCount {
    pub date: NaiveDate,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerFigures {
    pub user_id: Option<Uuid>,
    pub user_email: Option<String>,
    pub total_leads: i64,
    pub in_pipeline: i64,
    pub converted: i64,
}

/// The pipeline dashboard over the viewer's leads and interactions; `per_user` only when asked for.
pub async fn pipeline(
    conn: &mut PgConnection,
    scope: &ReportScope,
    with_per_user: bool,
) -> Result<PipelineDashboard, DomainError> {
    let today = scope.today();
    let groups = lead_groups(conn, scope, DayRange::all_time(), LeadPerson::Owner).await?;
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let first_chart_day = today - Duration::days(CHART_DAYS - 1);
    let per_day: HashMap<NaiveDate, i64> =
        leads_per_day(conn, scope, first_chart_day.min(monday)).await?.into_iter().collect();
    let new_this_week = per_day.iter().filter(|(day, _)| **day >= monday).map(|(_, count)| count).sum();
    let chart_data = (0..CHART_DAYS)
        .map(|offset| {
            let date = first_chart_day + Duration::days(offset);
            DayCount { date, count: per_day.get(&date).copied().unwrap_or(0) }
        })
        .collect();

    let mut qb =
        QueryBuilder::<Postgres>::new("SELECT count(*) FILTER (WHERE i.follow_up_at >= now() AND i.follow_up_at < ((");
    qb.push_bind(today.succ_opt().unwrap_or(today)).push("::timestamp AT TIME ZONE ").push_bind(scope.zone());
    qb.push("))), count(*) FILTER (WHERE i.follow_up_at < now()) FROM interactions i WHERE i.tenant_id = ");
    qb.push_bind(scope.tenant).push(" AND i.completed_at IS NULL AND i.follow_up_at IS NOT NULL");
    scope.push_visible(&mut qb, "i", "user_id");
    let (due_today, overdue): (i64, i64) = qb.build_query_as().fetch_one(&mut *conn).await?;

    let per_user = if with_per_user {
        let emails = super::user_emails(conn, scope.tenant).await?;
        let mut owners: Vec<OwnerFigures> = per_person(&groups)
            .into_iter()
            .map(|(person, figures)| OwnerFigures {
                user_id: person,
                user_email: person.and_then(|id| emails.get(&id).cloned()),
                total_leads: figures.total,
                in_pipeline: figures.in_pipeline,
                converted: figures.converted,
            })
            .collect();
        owners.sort_by(|a, b| {
            b.total_leads
                .cmp(&a.total_leads)
                .then_with(|| email_order(&(a.user_email.clone(), a.user_id), &(b.user_email.clone(), b.user_id)))
        });
        Some(owners)
    } else {
        None
    };

    Ok(PipelineDashboard {
        total_leads: groups.iter().map(|group| group.leads).sum(),
        new_this_week,
        in_pipeline: groups.iter().filter(|group| is_in_pipeline(&group.status)).map(|group| group.leads).sum(),
        pipeline_by_stage: by_status(&groups),
        tasks_due: TasksDue { today: due_today, overdue },
        chart_data,
        per_user,
    })
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SupportDashboard {
    /// Tickets `open` or `in_progress`.
    pub open_tickets: i64,
    /// Open tickets per queue (`null` key: no queue), by count descending, then queue.
    pub by_queue: Vec<KeyCount>,
    /// Tickets per status, every status in contract order.
    pub by_status: Vec<KeyCount>,
    /// Open tickets per priority, every priority in contract order.
    pub by_priority: Vec<KeyCount>,
    /// Open tickets assigned to the caller.
    pub my_assigned: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyCount {
    pub key: Option<String>,
    pub count: i64,
}

fn is_open_ticket(status: &str) -> bool {
    status == TicketStatus::Open.as_str() || status == TicketStatus::InProgress.as_str()
}

/// The support dashboard over the tickets the viewer sees.
pub async fn support(conn: &mut PgConnection, scope: &ReportScope) -> Result<SupportDashboard, DomainError> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT t.status, t.queue, t.priority, t.assigned_to_user_id = ");
    qb.push_bind(scope.viewer.user_id).push(" IS TRUE AS mine, count(*) FROM tickets t WHERE t.tenant_id = ");
    qb.push_bind(scope.tenant);
    scope.push_visible(&mut qb, "t", "assigned_to_user_id");
    qb.push(" GROUP BY 1, 2, 3, 4");
    let rows: Vec<(String, Option<String>, String, bool, i64)> = qb.build_query_as().fetch_all(conn).await?;
    let open = || rows.iter().filter(|row| is_open_ticket(&row.0));
    let mut queues: HashMap<Option<String>, i64> = HashMap::new();
    for row in open() {
        *queues.entry(row.1.clone()).or_default() += row.4;
    }
    let mut by_queue: Vec<KeyCount> = queues.into_iter().map(|(key, count)| KeyCount { key, count }).collect();
    by_queue.sort_by(|a, b| {
        b.count.cmp(&a.count).then_with(|| a.key.is_none().cmp(&b.key.is_none())).then_with(|| a.key.cmp(&b.key))
    });
    Ok(SupportDashboard {
        open_tickets: open().map(|row| row.4).sum(),
        by_queue,
        by_status: TicketStatus::ALL
            .iter()
            .map(|status| KeyCount {
                key: Some(status.as_str().to_owned()),
                count: rows.iter().filter(|row| row.0 == status.as_str()).map(|row| row.4).sum(),
            })
            .collect(),
        by_priority: TicketPriority::ALL
            .iter()
            .map(|priority| KeyCount {
                key: Some(priority.as_str().to_owned()),
                count: open().filter(|row| row.2 == priority.as_str()).map(|row| row.4).sum(),
            })
            .collect(),
        my_assigned: open().filter(|row| row.3).map(|row| row.4).sum(),
    })
}
