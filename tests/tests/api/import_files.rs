//! One leads file in every shape real exports give it (line ends, delimiters, encodings, XLSX): the same
//! counts, the same errors at the same `row_number`s, and each error pointing at the record it came from.

use crate::imports::HEADER;
use crm_tests::{Session, TestApp, import_file, import_tenant, utf16};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

const RECORDS: usize = 3_000;

/// A line of the generated file, in order.
#[derive(Debug, Clone, Copy)]
enum Line {
    /// The record at this index of `LeadsFile::records`.
    Record(usize),
    /// An empty line: a spreadsheet shows it as an empty row.
    Blank,
    /// A record of empty cells (what Excel writes for an empty row: only delimiters).
    EmptyCells,
}

/// What the import is expected to say about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fault {
    error_type: &'static str,
    code: &'static str,
    field: &'static str,
}

struct LeadsFile {
    records: Vec<Vec<String>>,
    faults: Vec<Option<Fault>>,
    lines: Vec<Line>,
}

const FIRST_NAMES: [&str; 10] =
    ["Zoë", "René", "Jürgen", "Françoise", "Søren", "Iñès", "Ægir", "Ólafur", "Chloé", "Mårten"];
const LAST_NAMES: [&str; 7] = ["Müller", "García", "Ødegaard", "Lefèvre", "Þórsson", "Škoda", "Smith"];
const SOURCES: [&str; 4] = ["Website", "cold call", "Referral", ""];
const STATUSES: [&str; 5] = ["", "contacted", "Qualified", "new", "lost"];

fn fault(error_type: &'static str, code: &'static str, field: &'static str) -> Option<Fault> {
    Some(Fault { error_type, code, field })
}

/// The rows, deterministically: every 50 records one of each fault kind, notes with line breaks, quotes and
/// every delimiter inside, accented names (all in Windows-1252), blank cells, blank lines and an empty row.
fn leads_file() -> LeadsFile {
    let mut records = Vec::with_capacity(RECORDS);
    let mut faults = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let mut first_name = format!("{}{i}", FIRST_NAMES[i % FIRST_NAMES.len()]);
        let mut email = format!("lead{i}@example.com");
        let mut phone = if i % 3 == 0 { String::new() } else { format!("(415) 555-{:04}", 2600 + i % 400) };
        let mut status = STATUSES[i % STATUSES.len()].to_owned();
        let notes = match i % 7 {
            0 => format!("Called on day {}\nSaid: \"send the brochure\"; later, | maybe\tnext week", i % 30),
            1 if i % 3 == 0 => "Two paragraphs:\n\nthe second after a blank line".to_owned(),
            2 => String::new(),
            _ => format!("note {i}"),
        };
        let problem = match i % 50 {
            3 => {
                first_name.clear();
                fault("validation", "missing_required", "first_name")
            }
            13 => {
                email = format!("lead{i}(at)example.com");
                fault("validation", "invalid_email", "email")
            }
            23 => {
                phone = "12".to_owned();
                fault("validation", "invalid_phone", "phone")
            }
            33 => {
                status = "hot".to_owned();
                fault("validation", "invalid_enum", "status")
            }
            43 => {
                email = format!("LEAD{}@example.com", i - 1);
                fault("duplicate", "duplicate_in_file", "email")
            }
            _ if i == 1_500 => {
                email = "existing@example.com".to_owned();
                fault("duplicate", "duplicate_existing", "email")
            }
            _ => None,
        };
        records.push(vec![
            first_name,
            if i % 11 == 0 { String::new() } else { LAST_NAMES[i % LAST_NAMES.len()].to_owned() },
            email,
            phone,
            if i % 5 == 0 { String::new() } else { format!("Société {}, Ltd.", i % 13) },
            SOURCES[i % SOURCES.len()].to_owned(),
            status,
            notes,
            String::new(),
            format!("2024-03-{:02} 09:{:02}", 1 + i % 28, i % 60),
        ]);
        faults.push(problem);
    }
    let mut lines = Vec::with_capacity(RECORDS + 4);
    for index in 0..RECORDS {
        lines.push(Line::Record(index));
        match index {
            9 => lines.push(Line::Blank),
            1_999 => lines.extend([Line::Blank, Line::Blank]),
            2_500 => lines.push(Line::EmptyCells),
            _ => {}
        }
    }
    LeadsFile { records, faults, lines }
}

/// Where a record is: its spreadsheet row (the header is row 1, one row per record or blank line) and the
/// physical line it starts on (each line break inside a quoted cell starts a new line).
#[derive(Debug, Clone, Copy)]
struct Place {
    row_number: i64,
    line_number: i64,
}

impl LeadsFile {
    fn places(&self) -> HashMap<usize, Place> {
        let mut places = HashMap::new();
        let (mut row_number, mut line_number) = (2, 2);
        for line in &self.lines {
            if let Line::Record(index) = line {
                places.insert(*index, Place { row_number, line_number });
                line_number += self.records[*index].iter().map(|cell| cell.matches('\n').count() as i64).sum::<i64>();
            }
            row_number += 1;
            line_number += 1;
        }
        places
    }

    /// The expected errors, in row order: (row_number, error_type, code, field).
    fn expected_errors(&self) -> Vec<Value> {
        let places = self.places();
        let mut errors: Vec<(i64, Value)> = (0..self.records.len())
            .filter_map(|index| {
                let fault = self.faults[index].as_ref()?;
                let row = places[&index].row_number;
                Some((row, json!([row, fault.error_type, fault.code, fault.field])))
            })
            .collect();
        errors.sort_by_key(|(row, _)| *row);
        errors.into_iter().map(|(_, error)| error).collect()
    }

    /// (email, first_name, notes) of every record that should become a lead, by email.
    fn expected_leads(&self) -> Vec<Value> {
        let mut leads: Vec<Value> = (0..self.records.len())
            .filter(|index| self.faults[*index].is_none())
            .map(|index| {
                let record = &self.records[index];
                json!([record[2], record[0], if record[7].is_empty() { Value::Null } else { json!(record[7]) }])
            })
            .collect();
        leads.sort_by(|a, b| a[0].as_str().cmp(&b[0].as_str()));
        leads
    }

    /// The file as CSV. `record_ends` is used in turn, line by line (one entry: the same end everywhere); a
    /// line break inside a quoted cell is written as `break_inside` of the record's turn.
    fn csv(&self, delimiter: u8, record_ends: &[&str], breaks_inside: &[&str]) -> String {
        self.csv_quoting(delimiter, record_ends, breaks_inside, &['\n', '\r'])
    }

    /// As `csv`, quoting a cell only when it holds the delimiter, a quote or one of `line_breaks`.
    fn csv_quoting(&self, delimiter: u8, record_ends: &[&str], breaks_inside: &[&str], line_breaks: &[char]) -> String {
        let delimiter = delimiter as char;
        let quoted_by: Vec<char> = [delimiter, '"'].into_iter().chain(line_breaks.iter().copied()).collect();
        let write_line = |text: &mut String, cells: &[String], turn: usize| {
            let break_inside = breaks_inside[turn % breaks_inside.len()];
            let quoted: Vec<String> = cells
                .iter()
                .map(|cell| {
                    if cell.contains(quoted_by.as_slice()) {
                        format!("\"{}\"", cell.replace('"', "\"\"").replace('\n', break_inside))
                    } else {
                        cell.clone()
                    }
                })
                .collect();
            text.push_str(&quoted.join(&delimiter.to_string()));
        };
        let mut text = String::new();
        let header: Vec<String> = HEADER.iter().map(|name| (*name).to_owned()).collect();
        write_line(&mut text, &header, 0);
        let mut end = record_ends[0];
        text.push_str(end);
        for (turn, line) in self.lines.iter().enumerate() {
            match line {
                Line::Record(index) => write_line(&mut text, &self.records[*index], turn),
                Line::EmptyCells => text.push_str(&delimiter.to_string().repeat(HEADER.len() - 1)),
                // The previous end again: CR followed by an LF would be one CRLF, not a blank line.
                Line::Blank => {
                    text.push_str(end);
                    continue;
                }
            }
            end = record_ends[(turn + 1) % record_ends.len()];
            text.push_str(end);
        }
        text
    }

    /// The file as an XLSX sheet, blank lines as empty sheet rows.
    fn xlsx(&self) -> Vec<u8> {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet();
        for (column, name) in HEADER.iter().enumerate() {
            sheet.write_string(0, column as u16, *name).expect("header cell");
        }
        for (place, line) in self.lines.iter().enumerate() {
            if let Line::Record(index) = line {
                for (column, cell) in self.records[*index].iter().enumerate() {
                    if !cell.is_empty() {
                        sheet.write_string(place as u32 + 1, column as u16, cell).expect("cell");
                    }
                }
            }
        }
        workbook.save_to_buffer().expect("xlsx")
    }
}

/// The variants: each line end with each delimiter, line breaks inside cells as every program writes them,
/// every encoding, and XLSX. The first is the baseline.
fn variants(file: &LeadsFile) -> Vec<(String, &'static str, Vec<u8>)> {
    const LF: &str = "\n";
    const CRLF: &str = "\r\n";
    const CR: &str = "\r";
    let windows_1252 = |text: String| {
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
        assert!(!unmappable, "every character of the file is in Windows-1252");
        bytes.into_owned()
    };
    let mut variants = Vec::new();
    for (delimiter, delimiter_name) in [(b',', "comma"), (b';', "semicolon"), (b'\t', "tab"), (b'|', "pipe")] {
        for (end, end_name) in [(LF, "LF"), (CRLF, "CRLF"), (CR, "CR")] {
            // Excel (Windows and Mac), LibreOffice and Google Sheets all write LF for a break inside a cell.
            let text = file.csv(delimiter, &[end], &[LF]);
            variants.push((format!("UTF-8, {delimiter_name}, {end_name}"), "leads.csv", text.into_bytes()));
        }
    }
    let converted = |end: &str| file.csv(b',', &[end], &[end]).into_bytes();
    variants.push(("CRLF inside cells too (unix2dos)".into(), "leads.csv", converted(CRLF)));
    variants.push(("CR inside cells too".into(), "leads.csv", converted(CR)));
    // Python's csv module with lineterminator='\r' quotes only cells holding a CR: the LFs stay unquoted.
    let unquoted = file.csv_quoting(b';', &[CR], &[LF], &['\r']);
    assert!(unquoted.contains(";Two paragraphs:\n\nthe second after a blank line;"), "an unquoted LF is in the file");
    variants.push(("CR, semicolon, LF inside cells unquoted".into(), "leads.csv", unquoted.into_bytes()));
    let mixed = file.csv(b',', &[LF, CRLF, CR], &[CR, LF, CRLF]);
    variants.push(("every line end mixed in one file".into(), "leads.csv", mixed.into_bytes()));
    let bom = |text: String| [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat();
    variants.push(("UTF-8 BOM, semicolon, CRLF".into(), "leads.csv", bom(file.csv(b';', &[CRLF], &[LF]))));
    variants.push(("UTF-8 BOM, comma, CR".into(), "leads.csv", bom(file.csv(b',', &[CR], &[LF]))));
    let text = file.csv(b'\t', &[CRLF], &[LF]);
    variants.push(("UTF-16LE BOM, tab, CRLF (Excel's Unicode text)".into(), "leads.csv", utf16(&text, true, true)));
    variants.push(("UTF-16LE BOM, comma, CR".into(), "leads.csv", utf16(&file.csv(b',', &[CR], &[LF]), true, true)));
    variants.push(("UTF-16BE, pipe, LF".into(), "leads.csv", utf16(&file.csv(b'|', &[LF], &[LF]), false, false)));
    variants.push(("Windows-1252, semicolon, CRLF".into(), "leads.csv", windows_1252(file.csv(b';', &[CRLF], &[LF]))));
    variants.push(("Windows-1252, comma, CR".into(), "leads.csv", windows_1252(file.csv(b',', &[CR], &[LF]))));
    variants.push(("XLSX".into(), "leads.xlsx", file.xlsx()));
    variants
}

/// What one variant's import did.
struct Outcome {
    name: String,
    /// Status and counts.
    summary: Value,
    /// (row_number, error_type, code, field) of each error, in row order.
    errors: Vec<Value>,
    /// Each error's `line_number` and `row_data`.
    details: Vec<(Value, Value)>,
    /// Every lead written, as the comparison of variants needs it, by email.
    leads: Vec<Value>,
}

async fn import_variant(app: &TestApp, name: String, file_name: &str, bytes: Vec<u8>) -> Outcome {
    // A tenant per variant, so duplicates against the database read the same in each.
    let (admin, _) = import_tenant(app).await;
    let id = import_file(app, &admin, file_name, bytes, &[("entity", "leads")]).await;
    outcome(app, &admin, id, name).await
}

async fn outcome(app: &TestApp, admin: &Session, id: Uuid, name: String) -> Outcome {
    let import = app.wait_import(admin, id, Duration::from_secs(240)).await;
    let summary = json!({
        "status": import["status"], "total_rows": import["total_rows"], "processed_rows": import["processed_rows"],
        "created": import["created"], "updated": import["updated"], "skipped": import["skipped"],
        "failed": import["failed"],
    });
    let listed = app.import_errors(admin, id).await;
    let errors = listed.iter().map(|e| json!([e["row_number"], e["error_type"], e["code"], e["field"]])).collect();
    let details = listed.iter().map(|e| (e["line_number"].clone(), e["row_data"].clone())).collect();
    let leads: Vec<Value> = sqlx::query_scalar(
        "SELECT json_build_array(email, first_name, last_name, phone, company, lead_source, status, notes, \
                to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')) \
         FROM leads WHERE tenant_id = $1 AND email <> 'existing@example.com' ORDER BY email COLLATE \"C\"",
    )
    .bind(admin.tenant_id)
    .fetch_all(&app.db)
    .await
    .expect("leads");
    Outcome { name, summary, errors, details, leads }
}

#[tokio::test]
async fn the_same_leads_file_reads_alike_in_every_line_end_delimiter_encoding_and_xlsx() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports", "--concurrency", "4"]).await;
    let file = leads_file();
    let places = file.places();
    let record_at_row: HashMap<i64, usize> = places.iter().map(|(index, place)| (place.row_number, *index)).collect();
    let expected_errors = file.expected_errors();
    let expected_leads = file.expected_leads();
    let failing = expected_errors.len() as i64;
    let created = expected_leads.len() as i64;
    assert_eq!((failing, created), (301, 2_699), "the generator makes the faults it says");

    let started = Instant::now();
    let runs = variants(&file).into_iter().map(|(name, file_name, bytes)| import_variant(&app, name, file_name, bytes));
    let outcomes = futures::future::join_all(runs).await;
    eprintln!("{} imports of {RECORDS} rows took {:?}", outcomes.len(), started.elapsed());

    let baseline = &outcomes[0];
    assert_eq!(baseline.name, "UTF-8, comma, LF");
    assert_eq!(
        baseline.summary,
        json!({"status": "completed_with_errors", "total_rows": RECORDS, "processed_rows": RECORDS,
               "created": created, "updated": 0, "skipped": 0, "failed": failing}),
        "blank lines and the empty row are not data rows"
    );
    assert_eq!(baseline.errors, expected_errors, "each fault at its record's spreadsheet row");
    let written: Vec<Value> = baseline.leads.iter().map(|lead| json!([lead[0], lead[1], lead[7]])).collect();
    assert_eq!(written, expected_leads, "every valid record written once, multi-line notes with their LF");
    assert!(written.iter().any(|lead| lead[2].as_str().is_some_and(|notes| notes.contains("\n\nthe second"))));

    for outcome in &outcomes {
        let name = &outcome.name;
        assert_eq!(outcome.summary, baseline.summary, "{name}: counts differ from the baseline");
        assert_eq!(outcome.errors, baseline.errors, "{name}: errors differ from the baseline");
        assert_eq!(outcome.leads, baseline.leads, "{name}: the leads written differ from the baseline");
        for (error, (line_number, row_data)) in outcome.errors.iter().zip(&outcome.details) {
            let row_number = error[0].as_i64().expect("row_number");
            let index = *record_at_row
                .get(&row_number)
                .unwrap_or_else(|| panic!("{name}: an error at row {row_number}, where the file has no record"));
            let record = &file.records[index];
            assert_eq!(
                (&row_data["First Name"], &row_data["Email"]),
                (&json!(record[0]), &json!(record[2])),
                "{name}: the error at row {row_number} shows another record than the file's row {row_number}"
            );
            let expected_line = if outcome.name == "XLSX" { Value::Null } else { json!(places[&index].line_number) };
            assert_eq!(line_number, &expected_line, "{name}: row {row_number} starts on another line");
        }
    }
}

#[tokio::test]
async fn errors_keep_their_row_and_line_through_corrections_retries_and_errors_csv() {
    let app = TestApp::spawn().await;
    let _worker = app.start_worker(&["--queues", "imports"]).await;
    let admin = app.tenant().await;
    // As Excel for Windows writes it: CRLF record ends, LF inside cells. Lines and rows, side by side:
    let file = concat!(
        "first_name,email,notes\r\n",                // line 1, row 1
        "Ada,ada@example.com,\"first\nsecond\"\r\n", // lines 2-3, row 2
        "\r\n",                                      // line 4, row 3 (blank)
        "Bob,bob(at)example.com,\"a\n\nb\"\r\n",     // lines 5-7, row 4: invalid_email
        "Cy,cy@example.com,x\r\n",                   // line 8, row 5
        ",nofirst@example.com,\"one\ntwo\"\r\n",     // lines 9-10, row 6: missing_required
        "Dee,dee@example.com,y\r\n",                 // line 11, row 7
    );
    let id = import_file(&app, &admin, "leads.csv", file.as_bytes().to_vec(), &[("entity", "leads")]).await;
    let done = app.wait_import(&admin, id, Duration::from_secs(30)).await;
    assert_eq!((&done["created"], &done["failed"]), (&json!(3), &json!(2)), "{done}");
    let places = |errors: &[Value]| -> Vec<Value> {
        errors.iter().map(|e| json!([e["row_number"], e["line_number"], e["code"], e["attempt"]])).collect()
    };
    let errors = app.import_errors(&admin, id).await;
    assert_eq!(places(&errors), [json!([4, 5, "invalid_email", 1]), json!([6, 9, "missing_required", 1])]);
    assert_eq!(errors[0]["row_data"]["notes"], "a\n\nb", "the row as it was, its line breaks as LF");
    assert_eq!(errors_csv_rows(&app, &admin, id).await, ["4", "6"], "errors.csv numbers rows alike");

    // The correction answers with the same place; the retry runs both unresolved rows again.
    let bob = errors[0]["id"].as_str().expect("id");
    let fixed = app
        .patch(&format!("/api/v1/import-errors/{bob}"), &admin, json!({"corrected_data": {"email": "bob@example.com"}}))
        .await;
    assert_eq!(fixed.status, reqwest::StatusCode::OK, "{}", fixed.body);
    assert_eq!((&fixed.data()["row_number"], &fixed.data()["line_number"]), (&json!(4), &json!(5)));
    let retry = app.post(&format!("/api/v1/imports/{id}/retry"), &admin, json!({})).await;
    assert_eq!(retry.status, reqwest::StatusCode::ACCEPTED, "{}", retry.body);
    let done = app.wait_import(&admin, id, Duration::from_secs(30)).await;
    assert_eq!((&done["created"], &done["failed"], &done["attempt"]), (&json!(4), &json!(1), &json!(2)), "{done}");

    let errors = app.import_errors(&admin, id).await;
    // The row that failed again was recorded by attempt 2 and kept its line; the corrected one is resolved.
    assert_eq!(places(&errors), [json!([4, 5, "invalid_email", 1]), json!([6, 9, "missing_required", 2])]);
    assert!(errors[0]["resolved_at"].is_string() && errors[1]["resolved_at"].is_null(), "{errors:?}");
    assert_eq!(errors_csv_rows(&app, &admin, id).await, ["6"]);
    let leads: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT email, notes FROM leads WHERE tenant_id = $1 ORDER BY email COLLATE \"C\"")
            .bind(admin.tenant_id)
            .fetch_all(&app.db)
            .await
            .expect("leads");
    let expected = [
        ("ada@example.com", Some("first\nsecond")),
        ("bob@example.com", Some("a\n\nb")),
        ("cy@example.com", Some("x")),
        ("dee@example.com", Some("y")),
    ];
    let leads: Vec<(&str, Option<&str>)> =
        leads.iter().map(|(email, notes)| (email.as_str(), notes.as_deref())).collect();
    assert_eq!(leads, expected, "each valid row written once, the corrected one by the retry");
}

/// The `row_number` column of an import's errors.csv (unresolved rows).
async fn errors_csv_rows(app: &TestApp, admin: &Session, id: Uuid) -> Vec<String> {
    let text = app.errors_csv(admin, id).await;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(reader.headers().expect("headers").get(0), Some("row_number"));
    reader.records().map(|record| record.expect("record")[0].to_owned()).collect()
}
