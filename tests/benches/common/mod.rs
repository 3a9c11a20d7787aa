//! What the import benchmarks share: a realistic leads file (as a CRM export or a hand-kept spreadsheet gives
//! it), the streaming upload and the wait for an import to end.

use crm_shared::domain::enums::{LeadSource, LeadStatus};
use crm_tests::TestApp;
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

/// A user of the tenant that rows are assigned to by email.
#[derive(Debug, Clone)]
pub struct Owner {
    pub email: String,
    pub id: Uuid,
}

pub struct LeadsFileSpec<'a> {
    pub rows: usize,
    /// Part of every new email, so files of the same shape never share a new email.
    pub tag: &'a str,
    /// `assigned_to` of nine rows in ten, round robin.
    pub owners: &'a [Owner],
    /// Emails already in the tenant: every third row (rows 0, 3, 6, ... of the data) takes the next one;
    /// empty, every email is new.
    pub existing_emails: &'a [String],
}

/// The header as a spreadsheet export writes it; the importer folds case and spaces away.
const RAW_HEADER: [&str; 11] = [
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "Company",
    "Lead Source",
    "Status",
    "Notes",
    "Assigned To",
    "Created At",
    "Converted At",
];

/// The columns of `leads` the clean file holds, in its order.
pub const CLEAN_COLUMNS: &str = "first_name, last_name, email, phone, company, lead_source, status, notes, \
                                 assigned_to_user_id, created_at, converted_at";

const FIRST_NAMES: [&str; 16] = [
    "Ada",
    "Grace",
    "José",
    "Zoë",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Søren",
    "Frances",
    "Radia",
    "Niklaus",
    "Hedy",
    "Katherine",
    "Mary-Jane",
    "Guido",
];
const LAST_NAMES: [&str; 16] = [
    "Lovelace",
    "Hopper",
    "Müller",
    "O'Brien",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Kierkegaard",
    "Allen",
    "Perlman",
    "Wirth",
    "Lamarr",
    "Johnson",
    "van Rossum",
    "",
];
const COMPANIES: [&str; 12] = [
    "Acme, Inc.",
    "Globex Corporation",
    "Initech LLC",
    "Umbrella Corp.",
    "Stark Industries",
    "Wayne Enterprises",
    "O'Brien & Sons",
    "Vandelay Industries, Ltd.",
    "Soylent \"Green\" Foods",
    "Tyrell Corp.",
    "",
    "Müller GmbH",
];
const AREA_CODES: [u32; 12] = [415, 212, 312, 617, 206, 512, 303, 404, 305, 213, 646, 720];
const EXCHANGES: [u32; 8] = [555, 201, 308, 427, 634, 782, 869, 941];
/// 2023-01-01T00:00:00Z; created_at falls in the two years after it.
const FIRST_CREATED_AT: i64 = 1_672_531_200;

/// A well-mixed number from the row and a salt, so the variants do not move in lockstep.
fn mix(row: usize, salt: u64) -> u64 {
    let mut z = (row as u64).wrapping_add(salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pick<T: Copy>(items: &[T], row: usize, salt: u64) -> T {
    items[(mix(row, salt) % items.len() as u64) as usize]
}

/// The same word as people type it: as written, lower case, upper case or capitalised.
fn mixed_case(word: &str, variant: u64) -> String {
    match variant % 4 {
        0 => word.to_owned(),
        1 => word.to_lowercase(),
        2 => word.to_uppercase(),
        _ => {
            let lower = word.to_lowercase();
            let mut chars = lower.chars();
            chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
        }
    }
}

fn ascii_word(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'é' => 'e',
            'ë' => 'e',
            'ø' => 'o',
            'ü' => 'u',
            other => other,
        })
        .filter(char::is_ascii_alphanumeric)
        .flat_map(|c| c.to_lowercase())
        .collect()
}

/// One lead: the raw cells of the spreadsheet and the values the importer stores for them.
struct Lead {
    raw: [String; 11],
    clean: [String; 11],
}

fn lead(spec: &LeadsFileSpec<'_>, row: usize) -> Lead {
    let first = pick(&FIRST_NAMES, row, 1);
    let last = pick(&LAST_NAMES, row, 2);
    let company = pick(&COMPANIES, row, 3);

    let email = if !spec.existing_emails.is_empty() && row.is_multiple_of(3) {
        // Exports differ in case from what the CRM holds; the match is case-insensitive.
        let existing = &spec.existing_emails[(row / 3) % spec.existing_emails.len()];
        if mix(row, 4).is_multiple_of(2) { existing.clone() } else { existing.to_uppercase() }
    } else {
        let domain = match ascii_word(company) {
            word if word.is_empty() => "gmail".to_owned(),
            word => word,
        };
        let local = match ascii_word(last) {
            surname if surname.is_empty() => format!("{}.{}{row}", ascii_word(first), spec.tag),
            surname => format!("{}.{surname}.{}{row}", ascii_word(first), spec.tag),
        };
        let address = format!("{local}@{domain}.example.com");
        if mix(row, 4).is_multiple_of(4) { mixed_case(&address, 3) } else { address }
    };

    let (area, exchange, line) = (pick(&AREA_CODES, row, 5), pick(&EXCHANGES, row, 6), mix(row, 7) % 10_000);
    let phone = match mix(row, 8) % 6 {
        0 => format!("({area}) {exchange}-{line:04}"),
        1 => format!("+1 {area}-{exchange}-{line:04}"),
        2 => format!("{area}.{exchange}.{line:04}"),
        3 => format!("{area}-{exchange}-{line:04}"),
        4 => format!("1-{area}-{exchange}-{line:04}"),
        _ => format!("+1 ({area}) {exchange} {line:04}"),
    };
    let e164 = format!("+1{area}{exchange}{line:04}");

    let (source_raw, source) = match mix(row, 9) % 10 {
        0 => (String::new(), String::new()),
        variant => {
            let source = pick(LeadSource::ALL, row, 10).as_str();
            (mixed_case(source, variant), source.to_owned())
        }
    };
    let (status_raw, status) = match mix(row, 11) % 20 {
        0 => (String::new(), LeadStatus::New.as_str().to_owned()),
        variant => {
            let status = pick(LeadStatus::ALL, row, 12).as_str();
            (mixed_case(status, variant), status.to_owned())
        }
    };

    let notes = match mix(row, 13) % 3 {
        0 => String::new(),
        1 => format!("Met at the \"Spring Expo\", wants a demo.\nCall back after 3pm, ask for {first}."),
        _ => format!(
            "Budget approved, decision by Q{}; prefers email.\nSays: \"no calls before 10, please\".\nFollow-up: pricing, \
             contract, onboarding",
            1 + mix(row, 14) % 4
        ),
    };

    let (assigned_raw, assigned) = match (spec.owners.is_empty(), mix(row, 15) % 10) {
        (true, _) | (false, 0) => (String::new(), String::new()),
        (false, variant) => {
            let owner = &spec.owners[row % spec.owners.len()];
            (
                if variant.is_multiple_of(3) { owner.email.to_uppercase() } else { owner.email.clone() },
                owner.id.to_string(),
            )
        }
    };

    let created = chrono::DateTime::from_timestamp(FIRST_CREATED_AT + (mix(row, 16) % (2 * 365 * 86_400)) as i64, 0)
        .unwrap_or_default();
    // ISO 8601 as exports write it: UTC, with an offset, or naive (the tenant's time zone, UTC here).
    let created_raw = match mix(row, 17) % 5 {
        0 => (created - chrono::Duration::hours(5)).format("%Y-%m-%dT%H:%M:%S-05:00").to_string(),
        1 => created.format("%Y-%m-%d %H:%M:%S").to_string(),
        _ => created.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    };
    let (converted_raw, converted) = if status == LeadStatus::Converted.as_str() {
        let converted = created + chrono::Duration::days(1 + (mix(row, 18) % 90) as i64);
        (converted.format("%Y-%m-%dT%H:%M:%SZ").to_string(), converted.to_rfc3339())
    } else {
        (String::new(), String::new())
    };

    Lead {
        raw: [
            first.to_owned(),
            last.to_owned(),
            email.clone(),
            phone,
            company.to_owned(),
            source_raw,
            status_raw,
            notes.clone(),
            assigned_raw,
            created_raw,
            converted_raw,
        ],
        clean: [
            first.to_owned(),
            last.to_owned(),
            email,
            e164,
            company.to_owned(),
            source,
            status,
            notes,
            assigned,
            created.to_rfc3339(),
            converted,
        ],
    }
}

/// Writes the raw file (UTF-8 with a BOM, as spreadsheet programs save CSV) to `raw`, and, when given, the
/// same leads as the importer stores them (E.164 phones, canonical status and source, owners as user ids,
/// UTC timestamps; columns `CLEAN_COLUMNS`) to `clean`. Returns the raw file's size in bytes.
pub fn write_leads_files(spec: &LeadsFileSpec<'_>, raw: &Path, clean: Option<&Path>) -> anyhow::Result<u64> {
    let mut raw_file = std::io::BufWriter::new(std::fs::File::create(raw)?);
    std::io::Write::write_all(&mut raw_file, "\u{feff}".as_bytes())?;
    let mut raw_writer = csv::Writer::from_writer(raw_file);
    raw_writer.write_record(RAW_HEADER)?;
    let mut clean_writer = match clean {
        Some(path) => Some(csv::Writer::from_writer(std::io::BufWriter::new(std::fs::File::create(path)?))),
        None => None,
    };
    if let Some(writer) = clean_writer.as_mut() {
        writer.write_record(CLEAN_COLUMNS.split(", "))?;
    }
    for row in 0..spec.rows {
        let lead = lead(spec, row);
        raw_writer.write_record(&lead.raw)?;
        if let Some(writer) = clean_writer.as_mut() {
            writer.write_record(&lead.clean)?;
        }
    }
    raw_writer.flush()?;
    if let Some(mut writer) = clean_writer {
        writer.flush()?;
    }
    Ok(std::fs::metadata(raw)?.len())
}

/// Streams a file to `POST /api/v1/imports` with the form's other fields; returns the import's id.
pub async fn upload(app: &TestApp, token: &str, path: &Path, fields: &[(&str, &str)]) -> anyhow::Result<Uuid> {
    let file = tokio::fs::File::open(path).await?;
    let length = file.metadata().await?.len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), length).file_name("leads.csv");
    let mut form = reqwest::multipart::Form::new().text("entity", "leads");
    for (name, value) in fields {
        form = form.text((*name).to_owned(), (*value).to_owned());
    }
    let response = app
        .client
        .post(format!("{}/api/v1/imports", app.address))
        .bearer_auth(token)
        .multipart(form.part("file", part))
        .send()
        .await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    anyhow::ensure!(status.as_u16() == 202, "upload answered {status}: {body}");
    Ok(Uuid::parse_str(body["data"]["id"].as_str().unwrap_or_default())?)
}

/// Polls an import every 50 ms until it has ended `completed` or `completed_with_errors`; returns its view.
pub async fn wait_finished(app: &TestApp, token: &str, id: Uuid) -> anyhow::Result<serde_json::Value> {
    loop {
        let response = app.client.get(format!("{}/api/v1/imports/{id}", app.address)).bearer_auth(token).send().await?;
        let body: serde_json::Value = response.json().await?;
        match body["data"]["status"].as_str() {
            Some("completed" | "completed_with_errors") => return Ok(body["data"].clone()),
            Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => anyhow::bail!("the import did not complete: {body}"),
        }
    }
}

/// The first errors of an import, for a message when counts are not what the benchmark expects.
pub async fn first_errors(app: &TestApp, token: &str, id: Uuid) -> String {
    let url = format!("{}/api/v1/imports/{id}/errors?limit=5", app.address);
    match app.client.get(url).bearer_auth(token).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(error) => error.to_string(),
    }
}

pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}
