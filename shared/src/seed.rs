//! Demo data: a tenant with users of every role, two teams, and realistic leads, clients, projects,
//! interactions and tickets. Records stream into Postgres with COPY, generated on a blocking thread while the
//! previous chunk is being written, so a million leads take seconds, not minutes.

use crate::db::{self, PgConnection, tenants, users};
use crate::domain::enums::Role;
use crate::error::DomainError;
use crate::ids::{TenantId, new_id};
use crate::password;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use std::fmt::Write as _;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub tenant_name: String,
    pub admin_email: String,
    pub password: String,
    pub leads: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SeededUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedReport {
    pub tenant_id: TenantId,
    pub users: Vec<SeededUser>,
    pub leads: u64,
    pub clients: u64,
    pub projects: u64,
    pub interactions: u64,
    pub tickets: u64,
    /// Each COPY stream: table, rows, seconds.
    pub copies: Vec<CopyTiming>,
    pub seconds: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyTiming {
    pub table: &'static str,
    pub rows: u64,
    pub seconds: f64,
}

const FIRST_NAMES: [&str; 20] = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Niklaus",
    "Hedy",
    "John",
    "Katherine",
    "Tim",
    "Sophie",
    "Guido",
    "Anita",
    "Bjarne",
];
const LAST_NAMES: [&str; 20] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Wirth",
    "Lamarr",
    "Backus",
    "Johnson",
    "Berners-Lee",
    "Wilson",
    "van Rossum",
    "Borg",
    "Stroustrup",
];
const COMPANY_WORDS: [&str; 16] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Aperture",
    "Pied Piper",
    "Massive Dynamic",
    "Oscorp",
];
const INDUSTRIES: [&str; 8] =
    ["Software", "Manufacturing", "Retail", "Healthcare", "Finance", "Logistics", "Education", "Energy"];
const LEAD_SOURCES: [&str; 9] = [
    "Website",
    "Referral",
    "Cold Call",
    "Email Campaign",
    "Social Media",
    "Trade Show",
    "Advertisement",
    "Partner",
    "Other",
];

/// Creates the demo tenant and fills it. The tenant's admin signs in with `plan.admin_email` and
/// `plan.password`; every other demo user has the same password.
#[tracing::instrument(skip_all, fields(leads = plan.leads))]
pub async fn seed_demo(pool: &PgPool, plan: &SeedPlan) -> Result<SeedReport, DomainError> {
    let started = std::time::Instant::now();
    let password = plan.password.clone();
    let password_hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|error| anyhow::anyhow!(error))??;

    let mut conn = pool.acquire().await?;
    let tenant = tenants::create(
        &mut conn,
        &tenants::NewTenant { name: &plan.tenant_name, default_region: "US", time_zone: "America/New_York" },
    )
    .await?;
    let seeded_users = create_users(&mut conn, tenant, plan, &password_hash).await?;
    let by_role = |role: Role| seeded_users.iter().filter(|u| u.role == role).map(|u| u.id).collect::<Vec<_>>();
    let owners = Owners {
        sales: by_role(Role::Sales),
        managers: by_role(Role::Manager),
        support: by_role(Role::Support),
        admin: by_role(Role::Admin),
    };

    let clients = (plan.leads / 20).max(20);
    let projects = clients * 2;
    let interactions = (plan.leads / 5).max(50);
    let tickets = (plan.leads / 50).max(20);
    let now = Utc::now();
    let client_ids: std::sync::Arc<Vec<Uuid>> = std::sync::Arc::new((0..clients).map(|_| new_id()).collect());
    let lead_ids: std::sync::Arc<Vec<Uuid>> =
        std::sync::Arc::new((0..plan.leads.min(200_000)).map(|_| new_id()).collect());

    drop(conn);
    let mut timings = Vec::new();
    // Two COPY streams at a time (one per Postgres backend core): first the leads in two halves, the
    // clients after the first half; then interactions beside projects and tickets, whose references exist.
    let half = plan.leads / 2;
    let lead_line = {
        let (owners, lead_ids) = (owners.clone(), lead_ids.clone());
        move |i, rng: &mut StdRng, out: &mut String| lead_line(tenant, i, rng, out, &owners, &lead_ids, now)
    };
    let client_line = {
        let (owners, client_ids) = (owners.clone(), client_ids.clone());
        move |i, rng: &mut StdRng, out: &mut String| client_line(tenant, i, rng, out, &owners, &client_ids, now)
    };
    let (first_half, rest) = tokio::join!(copy_rows(pool, "leads", LEAD_COPY, 0..half, lead_line.clone()), async {
        let second_half = copy_rows(pool, "leads", LEAD_COPY, half..plan.leads, lead_line).await?;
        let clients = copy_rows(pool, "clients", CLIENT_COPY, 0..clients, client_line).await?;
        Ok::<_, DomainError>([second_half, clients])
    });
    timings.push(first_half?);
    timings.extend(rest?);

    let project_line = {
        let (owners, client_ids) = (owners.clone(), client_ids.clone());
        move |i, rng: &mut StdRng, out: &mut String| project_line(tenant, i, rng, out, &owners, &client_ids, now)
    };
    let interaction_line = {
        let (owners, client_ids, lead_ids) = (owners.clone(), client_ids.clone(), lead_ids.clone());
        move |_, rng: &mut StdRng, out: &mut String| {
            interaction_line(tenant, rng, out, &owners, &lead_ids, &client_ids, now)
        }
    };
    let ticket_line = {
        let owners = owners.clone();
        move |i, rng: &mut StdRng, out: &mut String| ticket_line(tenant, i, rng, out, &owners, now)
    };
    let (interaction_timing, rest) =
        tokio::join!(copy_rows(pool, "interactions", INTERACTION_COPY, 0..interactions, interaction_line), async {
            let projects = copy_rows(pool, "projects", PROJECT_COPY, 0..projects, project_line).await?;
            let tickets = copy_rows(pool, "tickets", TICKET_COPY, 0..tickets, ticket_line).await?;
            Ok::<_, DomainError>([projects, tickets])
        });
    timings.push(interaction_timing?);
    timings.extend(rest?);
    // The leads' triggers left their counts as rollup deltas; fold them now so reports start from the rollup.
    crate::db::rollups::fold_deltas(pool).await?;
    // A bulk load leaves dead rows (the fold's), unset hint bits and no visibility map, which autovacuum
    // clears within minutes; doing it now starts the demo (and the benchmarks) from that steady state, with
    // fresh statistics so the planner picks the indexes right away.
    crate::db::vacuum_analyze(
        pool,
        &[
            "leads",
            "clients",
            "projects",
            "interactions",
            "tickets",
            "lead_rollup",
            "lead_rollup_deltas",
            "project_rollup",
            "project_rollup_deltas",
            "activity_rollup",
            "activity_rollup_deltas",
            "client_revenue",
        ],
    )
    .await?;

    Ok(SeedReport {
        tenant_id: tenant,
        users: seeded_users,
        leads: plan.leads,
        clients,
        projects,
        interactions,
        tickets,
        copies: timings,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[derive(Clone)]
struct Owners {
    sales: Vec<Uuid>,
    managers: Vec<Uuid>,
    support: Vec<Uuid>,
    admin: Vec<Uuid>,
}

impl Owners {
    fn creator(&self, rng: &mut StdRng) -> Uuid {
        match rng.random_range(0..10) {
            0 => pick(rng, &self.admin),
            1 => pick(rng, &self.managers),
            _ => pick(rng, &self.sales),
        }
    }
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

async fn create_users(
    conn: &mut PgConnection,
    tenant: TenantId,
    plan: &SeedPlan,
    password_hash: &str,
) -> Result<Vec<SeededUser>, DomainError> {
    // Login emails are unique across tenants: derive the others from the whole tenant id (a UUIDv7's first
    // digits are a timestamp, shared by tenants created close together).
    let domain = format!("demo-{}.example", tenant.as_uuid().simple());
    let mut wanted: Vec<(String, String, Role)> = vec![(plan.admin_email.clone(), "Demo Admin".into(), Role::Admin)];
    for n in 1..=2 {
        wanted.push((format!("manager{n}@{domain}"), format!("Manager {n}"), Role::Manager));
    }
    for n in 1..=8 {
        wanted.push((format!("sales{n}@{domain}"), format!("Sales Rep {n}"), Role::Sales));
    }
    for n in 1..=2 {
        wanted.push((format!("support{n}@{domain}"), format!("Support Agent {n}"), Role::Support));
    }
    wanted.push((format!("readonly@{domain}"), "Read Only".into(), Role::Readonly));

    let mut tx = db::begin_tenant_on(conn, tenant).await?;
    let east = crate::db::teams::create(&mut tx, tenant, "East").await?.id;
    let west = crate::db::teams::create(&mut tx, tenant, "West").await?.id;
    let mut seeded = Vec::new();
    for (index, (email, name, role)) in wanted.into_iter().enumerate() {
        // Managers 1 and 2 lead East and West; sales reps 1-4 are East, 5-8 West.
        let team_ids = match (role, index) {
            (Role::Manager, 1) | (Role::Sales, 3..=6) => vec![east],
            (Role::Manager, 2) | (Role::Sales, 7..=10) => vec![west],
            _ => vec![],
        };
        let row = users::create(
            &mut tx,
            tenant,
            users::NewUser { email: email.clone(), name, password_hash: password_hash.to_owned(), role, team_ids },
        )
        .await?;
        seeded.push(SeededUser { id: row.id, email, role });
    }
    tx.commit().await?;
    Ok(seeded)
}

const CHUNK_ROWS: u64 = 20_000;

/// Streams the lines `line` builds for `rows` into `COPY ... FROM STDIN` on a connection of its own,
/// generating the next chunk on a blocking thread while the current one is sent.
async fn copy_rows<F>(
    pool: &PgPool,
    table: &'static str,
    statement: &'static str,
    rows: std::ops::Range<u64>,
    line: F,
) -> Result<CopyTiming, DomainError>
where
    F: Fn(u64, &mut StdRng, &mut String) + Send + 'static,
{
    let started = std::time::Instant::now();
    let count = rows.end.saturating_sub(rows.start);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<String>(4);
    let producer = tokio::task::spawn_blocking(move || {
        let mut rng = StdRng::seed_from_u64(rows.start ^ rows.end ^ 0x5eed);
        let mut start = rows.start;
        while start < rows.end {
            let end = (start + CHUNK_ROWS).min(rows.end);
            let mut chunk = String::with_capacity(((end - start) * 200) as usize);
            for i in start..end {
                line(i, &mut rng, &mut chunk);
            }
            if sender.blocking_send(chunk).is_err() {
                return;
            }
            start = end;
        }
    });
    let mut conn = pool.acquire().await?;
    let mut copy = conn.copy_in_raw(statement).await?;
    while let Some(chunk) = receiver.recv().await {
        copy.send(chunk.into_bytes()).await?;
    }
    copy.finish().await?;
    producer.await.map_err(|error| anyhow::anyhow!(error))?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(table, rows = count, seconds, "copied");
    Ok(CopyTiming { table, rows: count, seconds })
}

const LEAD_COPY: &str = "COPY leads (id, tenant_id, first_name, last_name, email, phone, company, lead_source, status, \
     notes, assigned_to_user_id, converted_at, created_by, created_at, updated_at) FROM STDIN";
const CLIENT_COPY: &str = "COPY clients (id, tenant_id, name, email, phone, status, industry, assigned_to_user_id, \
     created_by, created_at, updated_at) FROM STDIN";
const PROJECT_COPY: &str = "COPY projects (id, tenant_id, client_id, name, status, value, start_date, close_date, \
     assigned_to_user_id, created_by, created_at, updated_at) FROM STDIN";
const INTERACTION_COPY: &str = "COPY interactions (id, tenant_id, type, contact_date, lead_id, client_id, user_id, \
     notes, follow_up_at, completed_at, created_by, created_at, updated_at) FROM STDIN";
const TICKET_COPY: &str = "COPY tickets (id, tenant_id, subject, description, category, priority, status, queue, \
     assigned_to_user_id, closed_at, created_by, created_at, updated_at) FROM STDIN";

const NULL: &str = "\\N";

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| NULL.to_owned(), |value| value.to_string())
}

fn past(rng: &mut StdRng, now: DateTime<Utc>, max_days: i64) -> DateTime<Utc> {
    now - Duration::seconds(rng.random_range(0..max_days * 86_400))
}

fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

fn company(i: u64) -> String {
    format!("{} {}", COMPANY_WORDS[(i % 16) as usize], ["Inc", "LLC", "GmbH", "Ltd", "Group"][(i / 16 % 5) as usize])
}

fn lead_line(
    tenant: TenantId,
    i: u64,
    rng: &mut StdRng,
    out: &mut String,
    owners: &Owners,
    lead_ids: &[Uuid],
    now: DateTime<Utc>,
) {
    let first = FIRST_NAMES[rng.random_range(0..20)];
    let last = LAST_NAMES[rng.random_range(0..20)];
    let id = lead_ids.get(i as usize).copied().unwrap_or_else(new_id);
    let status = ["new", "new", "contacted", "contacted", "qualified", "lost", "converted"][rng.random_range(0..7)];
    let created = past(rng, now, 730);
    let converted =
        (status == "converted").then(|| ts(created + Duration::days(rng.random_range(1..60)).min(now - created)));
    let assigned = (rng.random_range(0..10) > 0).then(|| pick(rng, &owners.sales));
    let source = (rng.random_range(0..8) > 0).then(|| LEAD_SOURCES[rng.random_range(0..9)]);
    let notes = (rng.random_range(0..4) == 0).then_some("Asked for a demo next quarter");
    let _ = writeln!(
        out,
        "{id}\t{tenant}\t{first}\t{last}\t{}.{}.{i}@{}.example\t+1415{:07}\t{}\t{}\t{status}\t{}\t{}\t{}\t{}\t{}\t{}",
        first.to_lowercase(),
        last.to_lowercase().replace(' ', ""),
        COMPANY_WORDS[(i % 16) as usize].to_lowercase().replace(' ', ""),
        5_550_000 + (i % 10_000),
        company(i / 7),
        opt(source),
        opt(notes),
        opt(assigned),
        opt(converted),
        owners.creator(rng),
        ts(created),
        ts(created),
    );
}

fn client_line(
    tenant: TenantId,
    i: u64,
    rng: &mut StdRng,
    out: &mut String,
    owners: &Owners,
    ids: &[Uuid],
    now: DateTime<Utc>,
) {
    let status = ["new", "prospect", "active", "active", "inactive"][rng.random_range(0..5)];
    let created = ts(past(rng, now, 900));
    let _ = writeln!(
        out,
        "{}\t{tenant}\t{} #{i}\tcontact{i}@client{i}.example\t+1212{:07}\t{status}\t{}\t{}\t{}\t{created}\t{created}",
        ids[i as usize],
        company(i),
        5_550_000 + (i % 10_000),
        INDUSTRIES[rng.random_range(0..8)],
        pick(rng, &owners.sales),
        owners.creator(rng),
    );
}

fn project_line(
    tenant: TenantId,
    i: u64,
    rng: &mut StdRng,
    out: &mut String,
    owners: &Owners,
    clients: &[Uuid],
    now: DateTime<Utc>,
) {
    let status = ["active", "pending", "completed", "completed", "cancelled"][rng.random_range(0..5)];
    let start = past(rng, now, 600).date_naive();
    let close =
        (status == "completed" || status == "cancelled").then(|| start + Duration::days(rng.random_range(10..200)));
    let created = ts(past(rng, now, 600));
    let _ = writeln!(
        out,
        "{}\t{tenant}\t{}\tProject {i}\t{status}\t{}.{:02}\t{start}\t{}\t{}\t{}\t{created}\t{created}",
        new_id(),
        clients[rng.random_range(0..clients.len())],
        rng.random_range(1_000..250_000),
        rng.random_range(0..100),
        opt(close),
        pick(rng, &owners.sales),
        owners.creator(rng),
    );
}

fn interaction_line(
    tenant: TenantId,
    rng: &mut StdRng,
    out: &mut String,
    owners: &Owners,
    leads: &[Uuid],
    clients: &[Uuid],
    now: DateTime<Utc>,
) {
    let kind = ["call", "meeting", "email", "follow_up", "note"][rng.random_range(0..5)];
    let contact = past(rng, now, 365);
    let (lead, client) = if rng.random_bool(0.6) {
        (Some(leads[rng.random_range(0..leads.len())]), None)
    } else {
        (None, Some(clients[rng.random_range(0..clients.len())]))
    };
    let follow_up = (kind == "follow_up").then(|| contact + Duration::days(rng.random_range(1..30)));
    let completed = follow_up.filter(|at| *at < now && rng.random_bool(0.7)).map(ts);
    let user = pick(rng, &owners.sales);
    let _ = writeln!(
        out,
        "{}\t{tenant}\t{kind}\t{}\t{}\t{}\t{user}\tSpoke about pricing\t{}\t{}\t{user}\t{}\t{}",
        new_id(),
        ts(contact),
        opt(lead),
        opt(client),
        opt(follow_up.map(ts)),
        opt(completed),
        ts(contact),
        ts(contact),
    );
}

fn ticket_line(tenant: TenantId, i: u64, rng: &mut StdRng, out: &mut String, owners: &Owners, now: DateTime<Utc>) {
    let status = ["open", "in_progress", "resolved", "closed"][rng.random_range(0..4)];
    let created = past(rng, now, 365);
    let closed = matches!(status, "resolved" | "closed")
        .then(|| ts(created + Duration::hours(rng.random_range(1..400)).min(now - created)));
    let _ = writeln!(
        out,
        "{}\t{tenant}\tTicket {i}: export is slow\tCustomer reports a slow export\t{}\t{}\t{status}\t{}\t{}\t{}\t{}\t{}\t{}",
        new_id(),
        ["bug", "feature", "question", "other"][rng.random_range(0..4)],
        ["low", "medium", "high", "urgent"][rng.random_range(0..4)],
        ["tier1", "tier2", "billing"][rng.random_range(0..3)],
        pick(rng, &owners.support),
        opt(closed),
        owners.creator(rng),
        ts(created),
        ts(created),
    );
}
