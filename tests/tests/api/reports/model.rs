//! The reports computed again, independently of the product: every row of the tenant is read raw (as the owner,
//! no row-level security, no rollup), and each figure is worked out here in Rust from the contract's words (§8).
//! The tests compare these answers with the API's, field by field.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

const LEAD_STATUSES: [&str; 5] = ["new", "contacted", "qualified", "lost", "converted"];
const CLIENT_STATUSES: [&str; 4] = ["new", "prospect", "active", "inactive"];
const PROJECT_STATUSES: [&str; 4] = ["active", "pending", "completed", "cancelled"];

/// A client or lead the follow-ups report looks at: id, name, created_at.
type Contactable = (Uuid, String, DateTime<Utc>);

pub struct Lead {
    id: Uuid,
    first_name: String,
    last_name: Option<String>,
    lead_source: Option<String>,
    status: String,
    assigned: Option<Uuid>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    converted_at: Option<DateTime<Utc>>,
    live: bool,
}

pub struct Client {
    id: Uuid,
    name: String,
    status: String,
    assigned: Option<Uuid>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    live: bool,
}

pub struct Project {
    client_id: Uuid,
    status: String,
    value: Option<Decimal>,
    start_date: Option<NaiveDate>,
    close_date: Option<NaiveDate>,
    assigned: Option<Uuid>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    live: bool,
}

pub struct Interaction {
    id: Uuid,
    kind: String,
    contact_date: DateTime<Utc>,
    lead_id: Option<Uuid>,
    client_id: Option<Uuid>,
    user_id: Option<Uuid>,
    created_by: Option<Uuid>,
    notes: Option<String>,
    follow_up_at: Option<DateTime<Utc>>,
    completed: bool,
    live: bool,
}

/// Who reads: the tenant (admin), a manager's teams, or one person's own records (sales, readonly, `user_id`).
#[derive(Debug, Clone, Copy)]
pub enum Reader {
    Tenant,
    Manager(Uuid),
    Own(Uuid),
}

/// Inclusive days in the tenant's zone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Days {
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

impl Days {
    pub fn all() -> Days {
        Days::default()
    }

    pub fn between(start: &str, end: &str) -> Days {
        Days { start: Some(start.parse().expect("a day")), end: Some(end.parse().expect("a day")) }
    }

    fn holds(&self, day: NaiveDate) -> bool {
        self.start.is_none_or(|start| day >= start) && self.end.is_none_or(|end| day <= end)
    }

    /// `start_date=...&end_date=...` (empty without a range).
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(start) = self.start {
            parts.push(format!("start_date={start}"));
        }
        if let Some(end) = self.end {
            parts.push(format!("end_date={end}"));
        }
        parts.join("&")
    }
}

pub struct World {
    zone: Tz,
    emails: HashMap<Uuid, String>,
    active: HashSet<Uuid>,
    /// team → members
    teams: HashMap<Uuid, Vec<Uuid>>,
    leads: Vec<Lead>,
    clients: Vec<Client>,
    projects: Vec<Project>,
    interactions: Vec<Interaction>,
}

fn round2(value: Decimal) -> f64 {
    value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero).to_f64().expect("a number")
}

fn rate(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { round2(Decimal::from(part as u64) * Decimal::from(100) / Decimal::from(whole as u64)) }
}

fn mean(sum: Decimal, count: usize) -> Value {
    if count == 0 { Value::Null } else { json!(round2(sum / Decimal::from(count as u64))) }
}

fn name(first: &str, last: &Option<String>) -> String {
    match last {
        Some(last) => format!("{first} {last}"),
        None => first.to_owned(),
    }
}

impl World {
    /// Reads every row of the tenant as stored.
    pub async fn load(db: &PgPool, tenant: Uuid) -> World {
        let zone: String = sqlx::query_scalar("SELECT time_zone FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_one(db)
            .await
            .expect("read the tenant's rows");
        let users: Vec<(Uuid, String, bool)> =
            sqlx::query_as("SELECT id, email, is_active FROM users WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_all(db)
                .await
                .expect("read the tenant's rows");
        let memberships: Vec<(Uuid, Uuid)> =
            sqlx::query_as("SELECT team_id, user_id FROM user_teams WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_all(db)
                .await
                .expect("read the tenant's rows");
        let mut teams: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for (team, user) in memberships {
            teams.entry(team).or_default().push(user);
        }
        type LeadRow = (
            Uuid,
            String,
            Option<String>,
            Option<String>,
            String,
            Option<Uuid>,
            Option<Uuid>,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            bool,
        );
        let leads: Vec<LeadRow> = sqlx::query_as(
            "SELECT id, first_name, last_name, lead_source, status, assigned_to_user_id, created_by, created_at, \
             converted_at, deleted_at IS NULL FROM leads WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_all(db)
        .await
        .expect("read the tenant's rows");
        type ClientRow = (Uuid, String, String, Option<Uuid>, Option<Uuid>, DateTime<Utc>, bool);
        let clients: Vec<ClientRow> = sqlx::query_as(
            "SELECT id, name, status, assigned_to_user_id, created_by, created_at, deleted_at IS NULL FROM clients \
             WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_all(db)
        .await
        .expect("read the tenant's rows");
        type ProjectRow = (
            Uuid,
            String,
            Option<Decimal>,
            Option<NaiveDate>,
            Option<NaiveDate>,
            Option<Uuid>,
            Option<Uuid>,
            DateTime<Utc>,
            bool,
        );
        let projects: Vec<ProjectRow> = sqlx::query_as(
            "SELECT client_id, status, value, start_date, close_date, assigned_to_user_id, created_by, created_at, \
             deleted_at IS NULL FROM projects WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_all(db)
        .await
        .expect("read the tenant's rows");
        type InteractionRow = (
            Uuid,
            String,
            DateTime<Utc>,
            Option<Uuid>,
            Option<Uuid>,
            Option<Uuid>,
            Option<Uuid>,
            Option<String>,
            Option<DateTime<Utc>>,
            bool,
            bool,
        );
        let interactions: Vec<InteractionRow> = sqlx::query_as(
            "SELECT id, type, contact_date, lead_id, client_id, user_id, created_by, notes, follow_up_at, \
             completed_at IS NOT NULL, deleted_at IS NULL FROM interactions WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_all(db)
        .await
        .expect("read the tenant's rows");
        World {
            zone: zone.parse().expect("a time zone"),
            emails: users.iter().map(|(id, email, _)| (*id, email.clone())).collect(),
            active: users.iter().filter(|user| user.2).map(|user| user.0).collect(),
            teams,
            leads: leads
                .into_iter()
                .map(|r| Lead {
                    id: r.0,
                    first_name: r.1,
                    last_name: r.2,
                    lead_source: r.3,
                    status: r.4,
                    assigned: r.5,
                    created_by: r.6,
                    created_at: r.7,
                    converted_at: r.8,
                    live: r.9,
                })
                .collect(),
            clients: clients
                .into_iter()
                .map(|r| Client {
                    id: r.0,
                    name: r.1,
                    status: r.2,
                    assigned: r.3,
                    created_by: r.4,
                    created_at: r.5,
                    live: r.6,
                })
                .collect(),
            projects: projects
                .into_iter()
                .map(|r| Project {
                    client_id: r.0,
                    status: r.1,
                    value: r.2,
                    start_date: r.3,
                    close_date: r.4,
                    assigned: r.5,
                    created_by: r.6,
                    created_at: r.7,
                    live: r.8,
                })
                .collect(),
            interactions: interactions
                .into_iter()
                .map(|r| Interaction {
                    id: r.0,
                    kind: r.1,
                    contact_date: r.2,
                    lead_id: r.3,
                    client_id: r.4,
                    user_id: r.5,
                    created_by: r.6,
                    notes: r.7,
                    follow_up_at: r.8,
                    completed: r.9,
                    live: r.10,
                })
                .collect(),
        }
    }

    pub fn lead_count(&self) -> usize {
        self.leads.iter().filter(|lead| lead.live).count()
    }

    /// The members of `team`, as stored.
    pub fn members_of(&self, team: Uuid) -> Vec<Uuid> {
        self.teams.get(&team).cloned().unwrap_or_default()
    }

    /// The manager and everyone who shares a team with them.
    fn team_of(&self, manager: Uuid) -> HashSet<Uuid> {
        let mut people: HashSet<Uuid> = HashSet::from([manager]);
        for members in self.teams.values() {
            if members.contains(&manager) {
                people.extend(members.iter().copied());
            }
        }
        people
    }

    /// The contract's visibility (§3): the reader sees a record created by or owned by them (or their teams).
    fn sees(&self, reader: Reader, created_by: Option<Uuid>, owner: Option<Uuid>) -> bool {
        let people = match reader {
            Reader::Tenant => return true,
            Reader::Manager(manager) => self.team_of(manager),
            Reader::Own(user) => HashSet::from([user]),
        };
        created_by.is_some_and(|id| people.contains(&id)) || owner.is_some_and(|id| people.contains(&id))
    }

    fn day(&self, moment: DateTime<Utc>) -> NaiveDate {
        moment.with_timezone(&self.zone).date_naive()
    }

    fn leads_of(&self, reader: Reader, days: Days) -> impl Iterator<Item = &Lead> {
        self.leads.iter().filter(move |l| {
            l.live && self.sees(reader, l.created_by, l.assigned) && days.holds(self.day(l.created_at))
        })
    }

    fn projects_of(&self, reader: Reader) -> impl Iterator<Item = &Project> {
        self.projects.iter().filter(move |p| p.live && self.sees(reader, p.created_by, p.assigned))
    }

    fn clients_of(&self, reader: Reader) -> impl Iterator<Item = &Client> {
        self.clients.iter().filter(move |c| c.live && self.sees(reader, c.created_by, c.assigned))
    }

    fn interactions_of(&self, reader: Reader) -> impl Iterator<Item = &Interaction> {
        self.interactions.iter().filter(move |i| i.live && self.sees(reader, i.created_by, i.user_id))
    }

    fn email(&self, user: Option<Uuid>) -> Value {
        user.and_then(|id| self.emails.get(&id)).map_or(Value::Null, |email| json!(email))
    }

    /// Sort key for people by email as read (case-insensitive), nobody last.
    fn email_key(&self, user: Option<Uuid>) -> (bool, Option<String>, Option<Uuid>) {
        let email = user.and_then(|id| self.emails.get(&id)).map(|email| email.to_lowercase());
        (email.is_none(), email, user)
    }

    pub fn pipeline(&self, reader: Reader, days: Days) -> Value {
        let leads: Vec<&Lead> = self.leads_of(reader, days).collect();
        let projects: Vec<&Project> = self.projects_of(reader).filter(|p| days.holds(self.day(p.created_at))).collect();
        json!({
            "leads": LEAD_STATUSES.iter().map(|status| json!({
                "status": status, "count": leads.iter().filter(|l| l.status == *status).count(),
            })).collect::<Vec<_>>(),
            "projects": PROJECT_STATUSES.iter().map(|status| {
                let of: Vec<&&Project> = projects.iter().filter(|p| p.status == *status).collect();
                json!({
                    "status": status,
                    "count": of.len(),
                    "total_value": round2(of.iter().filter_map(|p| p.value).sum()),
                })
            }).collect::<Vec<_>>(),
        })
    }

    pub fn lead_source(&self, reader: Reader, days: Days) -> Value {
        let mut sources: BTreeMap<Option<String>, (usize, usize, usize)> = BTreeMap::new();
        for lead in self.leads_of(reader, days) {
            let entry = sources.entry(lead.lead_source.clone()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(lead.status == "converted");
            entry.2 += usize::from(lead.status == "qualified");
        }
        let mut rows: Vec<(Option<String>, (usize, usize, usize))> = sources.into_iter().collect();
        rows.sort_by(|a, b| b.1.0.cmp(&a.1.0).then((a.0.is_none(), &a.0).cmp(&(b.0.is_none(), &b.0))));
        json!({ "sources": rows.into_iter().map(|(source, (total, converted, qualified))| json!({
            "source": source, "total_leads": total, "converted": converted, "qualified": qualified,
            "conversion_rate": rate(converted, total),
        })).collect::<Vec<_>>() })
    }

    pub fn conversion_rate(&self, reader: Reader, days: Days) -> Value {
        let leads: Vec<&Lead> = self.leads_of(reader, days).collect();
        let converted: Vec<&&Lead> = leads.iter().filter(|l| l.status == "converted").collect();
        let timed: Vec<Decimal> = converted
            .iter()
            .filter_map(|l| l.converted_at.map(|at| at - l.created_at))
            .map(|span| {
                let micros = span.num_microseconds().expect("fits");
                Decimal::from(micros) / Decimal::from(86_400_000_000_i64)
            })
            .collect();
        let mut people: HashMap<Option<Uuid>, (usize, usize)> = HashMap::new();
        for lead in &leads {
            let entry = people.entry(lead.assigned.or(lead.created_by)).or_default();
            entry.0 += 1;
            entry.1 += usize::from(lead.status == "converted");
        }
        let mut people: Vec<(Option<Uuid>, (usize, usize))> = people.into_iter().collect();
        people.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(self.email_key(a.0).cmp(&self.email_key(b.0))));
        json!({
            "overall": {
                "total_leads": leads.len(),
                "converted": converted.len(),
                "conversion_rate": rate(converted.len(), leads.len()),
                "avg_days_to_convert": mean(timed.iter().sum(), timed.len()),
            },
            "by_user": people.into_iter().map(|(user, (total, converted))| json!({
                "user_id": user, "user_email": self.email(user), "total_leads": total, "converted": converted,
                "conversion_rate": rate(converted, total),
            })).collect::<Vec<_>>(),
        })
    }

    pub fn revenue_by_client(&self, reader: Reader, days: Days, limit: usize) -> Value {
        let mut per_client: HashMap<Uuid, (usize, Decimal, Decimal)> = HashMap::new();
        for project in
            self.projects_of(reader).filter(|p| p.status != "cancelled" && days.holds(self.day(p.created_at)))
        {
            let entry = per_client.entry(project.client_id).or_default();
            entry.0 += 1;
            let value = project.value.unwrap_or_default();
            if project.status == "completed" {
                entry.1 += value;
            } else {
                entry.2 += value;
            }
        }
        let client_name = |id: Uuid| self.clients.iter().find(|c| c.id == id).map(|c| c.name.clone()).expect("client");
        let mut rows: Vec<(Uuid, String, usize, Decimal, Decimal)> = per_client
            .into_iter()
            .map(|(id, (count, won, pending))| (id, client_name(id), count, won, pending))
            .collect();
        // Postgres orders names by the database's collation; the test names avoid where collations differ.
        rows.sort_by(|a, b| (b.3 + b.4).cmp(&(a.3 + a.4)).then(a.1.cmp(&b.1)).then(a.0.cmp(&b.0)));
        rows.truncate(limit);
        json!({ "clients": rows.into_iter().map(|(id, name, count, won, pending)| json!({
            "client_id": id, "client_name": name, "total_projects": count, "total_value": round2(won + pending),
            "won_value": round2(won), "pending_value": round2(pending),
        })).collect::<Vec<_>>() })
    }

    pub fn user_activity(&self, reader: Reader, days: Days) -> Value {
        let mut users: Vec<Uuid> = match reader {
            Reader::Tenant => self.active.iter().copied().collect(),
            Reader::Manager(manager) => self.team_of(manager).into_iter().filter(|u| self.active.contains(u)).collect(),
            Reader::Own(user) => vec![user].into_iter().filter(|u| self.active.contains(u)).collect(),
        };
        users.sort_by_key(|user| self.email_key(Some(*user)));
        json!({ "users": users.into_iter().map(|user| json!({
            "user_id": user,
            "user_email": self.emails[&user],
            "assigned_leads": self.leads_of(reader, days).filter(|l| l.assigned == Some(user)).count(),
            "assigned_clients": self.clients_of(reader)
                .filter(|c| c.assigned == Some(user) && days.holds(self.day(c.created_at))).count(),
            "interactions_logged": self.interactions_of(reader)
                .filter(|i| i.user_id == Some(user) && days.holds(self.day(i.contact_date))).count(),
            "projects_created": self.projects_of(reader)
                .filter(|p| p.created_by == Some(user) && days.holds(self.day(p.created_at))).count(),
        })).collect::<Vec<_>>() })
    }

    /// The latest contact (not in the future) of every record, by any live interaction, whoever logged it.
    fn last_contacts(
        &self,
        now: DateTime<Utc>,
        of: impl Fn(&Interaction) -> Option<Uuid>,
    ) -> HashMap<Uuid, DateTime<Utc>> {
        let mut last: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
        for interaction in self.interactions.iter().filter(|i| i.live && i.contact_date <= now) {
            if let Some(record) = of(interaction) {
                let entry = last.entry(record).or_insert(interaction.contact_date);
                *entry = (*entry).max(interaction.contact_date);
            }
        }
        last
    }

    /// Records gone quiet: never contacted first (oldest record first), then the longest silent; at most 100.
    fn quiet(
        &self,
        now: DateTime<Utc>,
        inactive_days: i64,
        records: Vec<Contactable>,
        last: &HashMap<Uuid, DateTime<Utc>>,
        id_field: &str,
        name_field: &str,
    ) -> Vec<Value> {
        let mut never: Vec<&Contactable> = records.iter().filter(|r| !last.contains_key(&r.0)).collect();
        never.sort_by_key(|r| (r.2, r.0));
        let mut silent: Vec<(&Contactable, DateTime<Utc>)> = records
            .iter()
            .filter_map(|r| last.get(&r.0).map(|at| (r, *at)))
            .filter(|(_, at)| *at <= now - Duration::days(inactive_days))
            .collect();
        silent.sort_by_key(|(r, at)| (*at, r.0));
        let mut out: Vec<Value> = never
            .into_iter()
            .map(|r| json!({ id_field: r.0, name_field: r.1, "days_since_interaction": null, "last_interaction_date": null }))
            .collect();
        out.extend(silent.into_iter().map(|(r, at)| {
            json!({
                id_field: r.0, name_field: r.1,
                "days_since_interaction": (now - at).num_seconds().div_euclid(86_400),
                "last_interaction_date": self.day(at).format("%Y-%m-%d").to_string(),
            })
        }));
        out.truncate(100);
        out
    }

    pub fn follow_ups(&self, reader: Reader, now: DateTime<Utc>, inactive_days: i64) -> Value {
        let overdue =
            self.interactions_of(reader).filter(|i| !i.completed && i.follow_up_at.is_some_and(|at| at < now)).count();
        let clients: Vec<Contactable> = self
            .clients_of(reader)
            .filter(|c| c.status != "inactive")
            .map(|c| (c.id, c.name.clone(), c.created_at))
            .collect();
        let leads: Vec<Contactable> = self
            .leads
            .iter()
            .filter(|l| l.live && self.sees(reader, l.created_by, l.assigned))
            .filter(|l| l.status != "lost" && l.status != "converted")
            .map(|l| (l.id, name(&l.first_name, &l.last_name), l.created_at))
            .collect();
        let client_contacts = self.last_contacts(now, |i| i.client_id);
        let lead_contacts = self.last_contacts(now, |i| i.lead_id);
        json!({
            "overdue_interactions": overdue,
            "inactive_clients": self.quiet(now, inactive_days, clients, &client_contacts, "client_id", "client_name"),
            "inactive_leads": self.quiet(now, inactive_days, leads, &lead_contacts, "lead_id", "lead_name"),
        })
    }

    pub fn client_retention(&self, reader: Reader, days: Days) -> Value {
        let clients: Vec<&Client> = self.clients_of(reader).collect();
        let count = |status: &str| clients.iter().filter(|c| c.status == status).count();
        let (active, inactive) = (count("active"), count("inactive"));
        let recent = |status: &str| {
            self.interactions_of(reader)
                .filter(|i| days.holds(self.day(i.contact_date)))
                .filter(|i| clients.iter().any(|c| Some(c.id) == i.client_id && c.status == status))
                .count()
        };
        json!({
            "retention_rate": rate(active, active + inactive),
            "churn_rate": rate(inactive, active + inactive),
            "status_breakdown": CLIENT_STATUSES.iter().map(|status| json!({
                "status": status, "count": count(status), "recent_interactions": recent(status),
            })).collect::<Vec<_>>(),
        })
    }

    /// The default range of client-retention: the last 30 days, today included.
    pub fn last_30_days(&self, now: DateTime<Utc>) -> Days {
        let today = self.day(now);
        Days { start: Some(today - Duration::days(29)), end: Some(today) }
    }

    pub fn project_performance(&self, reader: Reader, days: Days) -> Value {
        let projects: Vec<&Project> = self.projects_of(reader).filter(|p| days.holds(self.day(p.created_at))).collect();
        let count = |statuses: &[&str]| projects.iter().filter(|p| statuses.contains(&p.status.as_str())).count();
        let values: Vec<Decimal> = projects.iter().filter_map(|p| p.value).collect();
        let durations: Vec<i64> = projects
            .iter()
            .filter(|p| p.status == "completed")
            .filter_map(|p| Some((p.close_date? - p.start_date?).num_days()))
            .collect();
        json!({ "summary": {
            "total_projects": projects.len(),
            "won": count(&["completed"]),
            "lost": count(&["cancelled"]),
            "pending": count(&["active", "pending"]),
            "win_rate": rate(count(&["completed"]), projects.len()),
            "avg_value": mean(values.iter().sum(), values.len()),
            "avg_duration_days": mean(Decimal::from(durations.iter().sum::<i64>()), durations.len()),
        }})
    }

    pub fn upcoming_tasks(&self, reader: Reader, now: DateTime<Utc>, days_ahead: i64) -> Value {
        let until = now + Duration::days(days_ahead);
        let within = |at: Option<DateTime<Utc>>| at.filter(|at| *at >= now && *at <= until);
        let mut tasks: Vec<(DateTime<Utc>, &Interaction)> = self
            .interactions_of(reader)
            .filter(|i| !i.completed)
            .filter_map(|i| {
                let first = [within(Some(i.contact_date)), within(i.follow_up_at)].into_iter().flatten().min()?;
                Some((first, i))
            })
            .collect();
        tasks.sort_by_key(|(first, i)| (*first, i.id));
        tasks.truncate(100);
        json!({ "tasks": tasks.into_iter().map(|(_, i)| json!({
            "interaction_id": i.id,
            "interaction_type": i.kind,
            "contact_date": i.contact_date,
            "follow_up_at": i.follow_up_at,
            "client_name": i.client_id.map(|id| self.clients.iter().find(|c| c.id == id).expect("client").name.clone()),
            "lead_name": i.lead_id.map(|id| {
                let lead = self.leads.iter().find(|l| l.id == id).expect("lead");
                name(&lead.first_name, &lead.last_name)
            }),
            "user_email": self.email(i.user_id),
            "notes": i.notes,
        })).collect::<Vec<_>>() })
    }

    pub fn revenue_forecast(&self, reader: Reader, days: Days) -> Value {
        let projects: Vec<&Project> = self
            .projects_of(reader)
            .filter(|p| p.status != "cancelled")
            .filter(|p| match p.close_date {
                Some(close) => days.holds(close),
                None => days.start.is_none() && days.end.is_none(),
            })
            .collect();
        let weight = |status: &str| match status {
            "completed" => Decimal::ONE,
            "active" => Decimal::new(6, 1),
            _ => Decimal::new(3, 1),
        };
        let weighted = |p: &&Project| p.value.unwrap_or_default() * weight(&p.status);
        let won: Decimal = projects.iter().filter(|p| p.status == "completed").map(weighted).sum();
        let pending: Decimal = projects.iter().filter(|p| p.status != "completed").map(weighted).sum();
        let mut months: BTreeMap<String, Decimal> = BTreeMap::new();
        for project in &projects {
            if let Some(close) = project.close_date {
                *months.entry(close.format("%Y-%m").to_string()).or_default() += weighted(project);
            }
        }
        json!({
            "forecast": {
                "total_pipeline_value": round2(projects.iter().filter_map(|p| p.value).sum()),
                "weighted_forecast": round2(won + pending),
                "won_value": round2(won),
                "pending_value": round2(pending),
            },
            "by_month": months.into_iter().map(|(month, sum)| json!({"month": month, "weighted_forecast": round2(sum)}))
                .collect::<Vec<_>>(),
        })
    }

    /// The pipeline dashboard (admin, manager, sales, readonly); `per_user` for admin and manager.
    pub fn dashboard(&self, reader: Reader, now: DateTime<Utc>, per_user: bool) -> Value {
        let leads: Vec<&Lead> = self.leads_of(reader, Days::all()).collect();
        let today = self.day(now);
        let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
        let end_of_today = self
            .zone
            .from_local_datetime(&(today + Duration::days(1)).and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .expect("a local midnight")
            .with_timezone(&Utc);
        let open: Vec<&Interaction> = self.interactions_of(reader).filter(|i| !i.completed).collect();
        let in_pipeline = |status: &str| ["new", "contacted", "qualified"].contains(&status);
        let per_user =
            per_user.then(|| {
                let mut people: HashMap<Option<Uuid>, (usize, usize, usize)> = HashMap::new();
                for lead in &leads {
                    let entry = people.entry(lead.assigned.or(lead.created_by)).or_default();
                    entry.0 += 1;
                    entry.1 += usize::from(in_pipeline(&lead.status));
                    entry.2 += usize::from(lead.status == "converted");
                }
                let mut people: Vec<(Option<Uuid>, (usize, usize, usize))> = people.into_iter().collect();
                people.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(self.email_key(a.0).cmp(&self.email_key(b.0))));
                people
                .into_iter()
                .map(|(user, (total, pipeline, converted))| json!({
                    "user_id": user, "user_email": self.email(user), "total_leads": total, "in_pipeline": pipeline,
                    "converted": converted,
                }))
                .collect::<Vec<_>>()
            });
        json!({
            "total_leads": leads.len(),
            "new_this_week": leads.iter().filter(|l| self.day(l.created_at) >= monday).count(),
            "in_pipeline": leads.iter().filter(|l| in_pipeline(&l.status)).count(),
            "pipeline_by_stage": LEAD_STATUSES.iter().map(|status| json!({
                "status": status, "count": leads.iter().filter(|l| l.status == *status).count(),
            })).collect::<Vec<_>>(),
            "tasks_due": {
                "today": open.iter().filter(|i| i.follow_up_at.is_some_and(|at| at >= now && at < end_of_today)).count(),
                "overdue": open.iter().filter(|i| i.follow_up_at.is_some_and(|at| at < now)).count(),
            },
            "chart_data": (0..30).rev().map(|back| {
                let date = today - Duration::days(back);
                json!({ "date": date, "count": leads.iter().filter(|l| self.day(l.created_at) == date).count() })
            }).collect::<Vec<_>>(),
            "per_user": per_user,
        })
    }
}
