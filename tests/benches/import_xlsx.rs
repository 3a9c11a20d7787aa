//! XLSX import at Excel's limit, end to end: a sheet of 1,048,576 rows (the header and 1,048,575 leads) as
//! Excel writes it — every text in the shared-strings table, every email and phone unique — generated with
//! rust_xlsxwriter, uploaded to the real API and imported by a real crm-worker process (upload start to
//! `completed`, polled every 50 ms). Prints rows, seconds, rows/s, file size, sheet XML size, the
//! shared-strings table and the import check's estimate of its memory, and the worker's peak memory (VmHWM,
//! from /proc).
//!
//! Run: `cargo build --release --bins && cargo bench -p crm-tests --bench import_xlsx`
//! (`BENCH_ROWS` overrides 1,048,575 leads).

use crm_shared::domain::enums::{LeadSource, LeadStatus};
use crm_shared::imports::xlsx_check;
use crm_tests::{Process, TestApp, environment, peak_memory_bytes};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A sheet holds 1,048,576 rows; one is the header.
const EXCEL_DATA_ROWS: u32 = 1_048_575;
const MIB: f64 = 1024.0 * 1024.0;

const FIRST_NAMES: [&str; 24] = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Margaret",
    "Ken",
    "Radia",
    "Dennis",
    "Hedy",
    "Linus",
    "Katherine",
    "Tim",
    "Sophie",
    "Guido",
    "Anita",
    "Bjarne",
    "Karen",
    "Niklaus",
    "Shafi",
    "Zoë",
];
const LAST_NAMES: [&str; 24] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "McCarthy",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Ritchie",
    "Lamarr",
    "Torvalds",
    "Johnson",
    "Berners-Lee",
    "Wilson",
    "van Rossum",
    "Borg",
    "Stroustrup",
    "Spärck Jones",
    "Wirth",
    "Goldwasser",
    "Müller",
];
const COMPANY_WORDS: [&str; 20] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Prestige",
    "Massive",
    "Dynamic",
    "Oceanic",
    "Nakatomi",
    "Gringotts",
    "Monarch",
    "Aperture",
];
const COMPANY_KINDS: [&str; 8] = ["Inc.", "LLC", "Ltd", "GmbH", "Logistics", "Software", "Holdings", "& Sons"];
const NOTES: [&str; 8] = [
    "Met at the spring trade show; wants a demo",
    "Asked for pricing for 50 seats",
    "Referred by an existing client",
    "Downloaded the whitepaper",
    "Call back after the budget review in Q3",
    "Prefers email, not phone",
    "",
    "Interested in the annual plan, follow up next week",
];
/// Area codes of US numbers, with exchanges that are not N11 codes: all valid for phone validation.
const AREA_CODES: [u32; 10] = [212, 213, 310, 312, 415, 617, 646, 702, 713, 206];
const EXCHANGES: [u32; 12] = [234, 267, 289, 345, 378, 456, 489, 567, 623, 678, 734, 789];

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

/// A unique, valid US phone number for each row, written the three ways lead files usually hold them.
fn phone(row: u32) -> String {
    let area = AREA_CODES[(row % 10) as usize];
    let rest = row / 10;
    let exchange = EXCHANGES[(rest / 10_000) as usize];
    let line = rest % 10_000;
    match row % 3 {
        0 => format!("({area}) {exchange}-{line:04}"),
        1 => format!("{area}-{exchange}-{line:04}"),
        _ => format!("+1 {area} {exchange} {line:04}"),
    }
}

/// The leads sheet, as Excel writes it: text cells in the shared-strings table.
fn generate(rows: u32) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(rows as usize <= 10 * EXCHANGES.len() * 10_000, "not enough unique phone numbers");
    let path = std::env::temp_dir().join(format!("crm-bench-leads-{rows}.xlsx"));
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    let header = ["first_name", "last_name", "email", "phone", "company", "status", "lead_source", "notes"];
    for (column, name) in header.iter().enumerate() {
        sheet.write_string(0, column as u16, *name)?;
    }
    for index in 0..rows {
        let row = index + 1;
        let first = FIRST_NAMES[(index % 24) as usize];
        let last = LAST_NAMES[((index / 24) % 24) as usize];
        let email_name = format!("{first}.{last}").to_lowercase().replace([' ', 'ë', 'ä', 'ü'], "");
        let company =
            format!("{} {}", COMPANY_WORDS[(index % 20) as usize], COMPANY_KINDS[((index / 20) % 8) as usize]);
        sheet.write_string(row, 0, first)?;
        sheet.write_string(row, 1, last)?;
        sheet.write_string(row, 2, format!("{email_name}.{index}@example.com"))?;
        sheet.write_string(row, 3, phone(index))?;
        sheet.write_string(row, 4, company)?;
        sheet.write_string(row, 5, LeadStatus::ALL[(index as usize) % LeadStatus::ALL.len()].as_str())?;
        sheet.write_string(row, 6, LeadSource::ALL[(index as usize) % LeadSource::ALL.len()].as_str())?;
        let note = NOTES[(index % 8) as usize];
        if !note.is_empty() {
            sheet.write_string(row, 7, note)?;
        }
    }
    workbook.save(&path)?;
    Ok(path)
}

fn entry_size(path: &Path, name: &str) -> anyhow::Result<u64> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path)?)?;
    Ok(archive.by_name(name)?.size())
}

async fn upload(app: &TestApp, token: &str, path: &Path) -> anyhow::Result<uuid::Uuid> {
    let file = tokio::fs::File::open(path).await?;
    let length = file.metadata().await?.len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
    let part = reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), length)
        .file_name("leads.xlsx");
    let form = reqwest::multipart::Form::new().text("entity", "leads").part("file", part);
    let response =
        app.client.post(format!("{}/api/v1/imports", app.address)).bearer_auth(token).multipart(form).send().await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    anyhow::ensure!(status.as_u16() == 202, "upload answered {status}: {body}");
    Ok(uuid::Uuid::parse_str(body["data"]["id"].as_str().unwrap_or_default())?)
}

async fn wait_completed(app: &TestApp, token: &str, id: uuid::Uuid) -> anyhow::Result<serde_json::Value> {
    loop {
        let response = app.client.get(format!("{}/api/v1/imports/{id}", app.address)).bearer_auth(token).send().await?;
        let body: serde_json::Value = response.json().await?;
        match body["data"]["status"].as_str() {
            Some("completed") => return Ok(body["data"].clone()),
            Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => anyhow::bail!("the import did not complete: {body}"),
        }
    }
}

async fn bench() -> anyhow::Result<()> {
    let rows: u32 = std::env::var("BENCH_ROWS").ok().and_then(|n| n.parse().ok()).unwrap_or(EXCEL_DATA_ROWS);
    println!("generating {rows} leads ...");
    let started = Instant::now();
    let path = generate(rows)?;
    println!("generated in {:.1} s", started.elapsed().as_secs_f64());
    let file_size = std::fs::metadata(&path)?.len();
    let sheet_xml = entry_size(&path, "xl/worksheets/sheet1.xml")?;
    println!(
        "file: {} ({:.1} MiB); sheet XML {:.1} MiB ({:.1}:1)",
        path.display(),
        file_size as f64 / MIB,
        sheet_xml as f64 / MIB,
        sheet_xml as f64 / file_size as f64
    );
    let started = Instant::now();
    let report = xlsx_check::check_zip(&path)?;
    let table = report.shared_strings.ok_or_else(|| anyhow::anyhow!("the sheet has no shared strings"))?;
    println!(
        "shared strings: {} texts, {:.1} MiB of XML, estimated {:.1} MiB in memory (bound {} MiB); check {:.2} s",
        table.strings,
        table.xml_bytes as f64 / MIB,
        table.estimated_bytes() as f64 / MIB,
        xlsx_check::MAX_SHARED_STRINGS_MEMORY / (1024 * 1024),
        started.elapsed().as_secs_f64()
    );

    let app = TestApp::spawn_on(crm_tests::recreate_migrated_database("crm_bench_import_xlsx").await).await;
    let admin = app.tenant().await;
    let mut env = environment(&app.database_url, &app.redis_prefix);
    env.insert("RUST_LOG".into(), "warn".into());
    let mut worker = Process::start("crm-worker", &["--queues", "imports"], &env);
    worker.wait_for_line("crm-worker ready", Duration::from_secs(30)).await;
    let pid = worker.child.id().unwrap_or_default();
    let idle = peak_memory_bytes(pid).unwrap_or(0);

    let started = Instant::now();
    let id = upload(&app, &admin.token, &path).await?;
    let uploaded = started.elapsed().as_secs_f64();
    let import = wait_completed(&app, &admin.token, id).await?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(import["created"].as_u64() == Some(u64::from(rows)), "not every row was created: {import}");
    let peak = peak_memory_bytes(pid).unwrap_or(0);
    println!(
        "import: {rows} rows in {seconds:.2} s upload to completed (upload {uploaded:.2} s), {:.0} rows/s",
        f64::from(rows) / seconds
    );
    println!(
        "worker peak memory (VmHWM): {:.1} MiB (required <= 512, aim 256; {:.1} MiB when idle)",
        peak as f64 / MIB,
        idle as f64 / MIB
    );

    worker.signal(nix::sys::signal::Signal::SIGTERM);
    worker.wait_exit(Duration::from_secs(30)).await;
    let _ = std::fs::remove_file(path);
    Ok(())
}
