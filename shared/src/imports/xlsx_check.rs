//! The check every .xlsx passes before calamine opens it (contract §6 limits).
//!
//! Each zip entry is inflated into a counter (nothing is kept) that stops the moment a bound is passed, so a
//! zip bomb costs at most the budget's worth of inflating and no memory; declared sizes in zip headers are not
//! trusted, the counted bytes are. While an entry inflates, its XML is tokenised with the same parser and
//! settings calamine uses (quick-xml), to bound what calamine will hold in memory once it opens the file:
//!
//! - the shared-strings table, which calamine keeps whole: one `String` per `<si>`, reserved up front for the
//!   declared `uniqueCount` (see [`SharedStringsCost`]). `count` (every reference to a string) costs nothing
//!   and is not bounded: a 1,048,576-row sheet of eight text columns declares about 8,400,000;
//! - styles (calamine builds a ~150-byte style for each cell format) and sheets and defined names, which it
//!   also keeps, by count;
//! - one XML event (quick-xml buffers a whole tag or text node) and one cell (calamine joins a cell's text
//!   runs into one string), by size: sheet rows themselves are streamed and cost nothing.

use super::reader::FileError;
use quick_xml::events::Event;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

const MIB: u64 = 1024 * 1024;

/// Total inflated bytes of all entries.
pub const MAX_INFLATED_BYTES: u64 = 2048 * MIB;
/// Entries inflating past this size may not inflate more than `MAX_RATIO` times their compressed size.
pub const RATIO_CHECKED_ABOVE: u64 = 100 * 1024;
pub const MAX_RATIO: u64 = 100;
pub const MAX_ENTRIES: usize = 10_000;
/// The memory calamine's shared-strings table may take, by the upper-bound estimate of `SharedStringsCost`:
/// room for a full sheet with a unique email and phone on every row, while one import stays well inside the
/// 512 MiB a worker may use (a worker runs at most two at once). The import_xlsx benchmark's sheet (1,048,575
/// leads: 2,097,387 strings, 78.1 MiB of XML) is estimated at 156.1 MiB, and the worker importing it peaked
/// at 233.1 MiB. Two imports at this bound at once have not been measured.
pub const MAX_SHARED_STRINGS_MEMORY: u64 = 192 * MIB;
/// Cell formats, fonts, fills and borders in the styles part. Excel itself stops at 64,000 cell formats.
pub const MAX_STYLE_RECORDS: u64 = 200_000;
/// Sheets and defined names.
pub const MAX_WORKBOOK_RECORDS: u64 = 200_000;
/// One tag or text node. A cell holds at most 32,767 characters, at most 7 bytes each in XML (`_x000D_`).
pub const MAX_XML_EVENT_BYTES: u64 = 16 * MIB;
/// One cell of a sheet, from its start tag to its end tag.
pub const MAX_CELL_XML_BYTES: u64 = 16 * MIB;

/// The bounds the check applies; [`XlsxLimits::CONTRACT`] in the product, smaller ones in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XlsxLimits {
    pub inflated_bytes: u64,
    pub ratio_checked_above: u64,
    pub ratio: u64,
    pub entries: usize,
    pub shared_strings_memory: u64,
    pub style_records: u64,
    pub workbook_records: u64,
    pub xml_event_bytes: u64,
    pub cell_xml_bytes: u64,
}

impl XlsxLimits {
    pub const CONTRACT: XlsxLimits = XlsxLimits {
        inflated_bytes: MAX_INFLATED_BYTES,
        ratio_checked_above: RATIO_CHECKED_ABOVE,
        ratio: MAX_RATIO,
        entries: MAX_ENTRIES,
        shared_strings_memory: MAX_SHARED_STRINGS_MEMORY,
        style_records: MAX_STYLE_RECORDS,
        workbook_records: MAX_WORKBOOK_RECORDS,
        xml_event_bytes: MAX_XML_EVENT_BYTES,
        cell_xml_bytes: MAX_CELL_XML_BYTES,
    };
}

/// What calamine's shared-strings table costs, from what the file holds rather than what it declares.
///
/// calamine keeps a `Vec<String>`, reserved for the declared `uniqueCount`: 24 bytes an entry. Each non-empty
/// string is a heap block of its length rounded up to 16 with 8 bytes of header, at least 32 bytes (glibc), so
/// at most its length + 31; and each `<si>` carries at least 16 bytes of markup (`<si><t>`, `</t></si>`), so the
/// strings' lengths add up to at most the XML's size less 16 a string. Hence at most
/// `24 × max(strings, declared) + xml_bytes + 15 × strings`. For a generated sheet of 1,048,575 leads with a
/// unique email and phone each (2,102,308 strings, 82.9 MB of XML) that is 157 MiB, where a process that only
/// opened it with calamine and read its cells peaked at 132 MiB.
/// Rich text (several `<r>` runs in one `<si>`) can leave up to its own length of spare capacity on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedStringsCost {
    pub xml_bytes: u64,
    /// `<si>` elements counted.
    pub strings: u64,
    /// `uniqueCount`, as calamine reads it (0 when absent or not a number: nothing is reserved then).
    pub declared_unique: u64,
}

impl SharedStringsCost {
    pub fn estimated_bytes(&self) -> u64 {
        self.strings
            .max(self.declared_unique)
            .saturating_mul(24)
            .saturating_add(self.xml_bytes)
            .saturating_add(self.strings.saturating_mul(15))
    }
}

/// What the check found: the sizes an operator may want to see in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipReport {
    pub entries: usize,
    pub inflated_bytes: u64,
    pub shared_strings: Option<SharedStringsCost>,
}

pub fn check_zip(path: &Path) -> Result<ZipReport, FileError> {
    check_zip_within(path, &XlsxLimits::CONTRACT)
}

pub fn check_zip_within(path: &Path, limits: &XlsxLimits) -> Result<ZipReport, FileError> {
    let file = File::open(path)?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|error| FileError(format!("the .xlsx file is not a readable zip archive ({error})")))?;
    if archive.len() > limits.entries {
        return Err(FileError(format!(
            "the .xlsx file has {} entries; at most {} are allowed",
            archive.len(),
            limits.entries
        )));
    }
    let mut inflated_total = 0u64;
    let mut workbook_records = 0u64;
    let mut shared_strings = None;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|error| FileError(format!("the .xlsx file has an entry that cannot be read ({error})")))?;
        let name = entry.name().map(|name| name.into_owned()).unwrap_or_else(|_| format!("entry {index}"));
        if entry.encrypted() {
            return Err(FileError(
                "the .xlsx file is password-protected; remove the password and upload it again".into(),
            ));
        }
        let compressed = entry.compressed_size();
        let ratio_cap = limits.ratio_checked_above.max(compressed.saturating_mul(limits.ratio));
        let budget = limits.inflated_bytes - inflated_total;
        let cap = ratio_cap.min(budget);
        let (counted, found) = inflate_and_scan(&mut entry, cap + 1, limits)
            .map_err(|error| FileError(format!("the .xlsx entry {name:?} cannot be inflated ({error})")))?;
        if counted > ratio_cap {
            return Err(FileError(format!(
                "the .xlsx entry {name:?} inflates more than {} times its compressed size ({compressed} bytes); \
                 the file looks like a zip bomb and was not opened",
                limits.ratio
            )));
        }
        if counted > budget {
            return Err(FileError(format!(
                "the .xlsx file inflates past {} MiB; it was not opened (save large sheets as CSV)",
                limits.inflated_bytes / MIB
            )));
        }
        inflated_total += counted;
        found.refuse_oversized(&name, limits)?;
        // calamine finds these parts by these names, whatever folder the workbook is in.
        let file_name = name.rsplit(['/', '\\']).next().unwrap_or(&name).to_ascii_lowercase();
        if file_name == "sharedstrings.xml" {
            let cost = SharedStringsCost {
                xml_bytes: counted,
                strings: found.shared_strings,
                declared_unique: found.declared_unique.unwrap_or(0),
            };
            refuse_costly_shared_strings(&cost, limits)?;
            shared_strings = Some(cost);
        }
        if file_name == "styles.xml" && found.style_records > limits.style_records {
            return Err(FileError(format!(
                "the .xlsx file's styles define {} cell formats, fonts, fills and borders; at most {} are allowed \
                 (so many usually means damaged formatting: clear the formats, or save the sheet as CSV)",
                found.style_records, limits.style_records
            )));
        }
        workbook_records += found.workbook_records;
        if workbook_records > limits.workbook_records {
            return Err(FileError(format!(
                "the .xlsx file has more than {} sheets and defined names; it was not opened",
                limits.workbook_records
            )));
        }
    }
    Ok(ZipReport { entries: archive.len(), inflated_bytes: inflated_total, shared_strings })
}

fn refuse_costly_shared_strings(cost: &SharedStringsCost, limits: &XlsxLimits) -> Result<(), FileError> {
    if cost.estimated_bytes() <= limits.shared_strings_memory {
        return Ok(());
    }
    let declared = if cost.declared_unique > cost.strings {
        format!(", declaring {} distinct texts,", cost.declared_unique)
    } else {
        String::new()
    };
    Err(FileError(format!(
        "the .xlsx file's table of shared texts ({} texts in {} MiB of XML{declared}) would take about {} MiB of \
         memory to read, more than the {} MiB an import may use; save the sheet as CSV and upload that",
        cost.strings,
        cost.xml_bytes.div_ceil(MIB),
        cost.estimated_bytes().div_ceil(MIB),
        limits.shared_strings_memory / MIB
    )))
}

/// Counts the bytes an entry inflates to, at most `limit`; and how many arrived since the last XML event, so
/// one that grows past its bound is stopped while it is read.
struct Inflating<R> {
    inner: R,
    limit: u64,
    total: u64,
    since_event: u64,
    event_limit: Option<u64>,
    event_too_large: bool,
}

impl<R: Read> Read for Inflating<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if let Some(event_limit) = self.event_limit
            && self.since_event > event_limit
        {
            self.event_too_large = true;
            return Err(std::io::Error::other("an XML event is too large"));
        }
        let room = usize::try_from(self.limit - self.total).unwrap_or(usize::MAX).min(buffer.len());
        let read = self.inner.read(&mut buffer[..room])?;
        self.total += read as u64;
        self.since_event += read as u64;
        Ok(read)
    }
}

/// What the XML of one entry holds that calamine would keep.
#[derive(Debug, Default)]
struct XmlFindings {
    shared_strings: u64,
    declared_unique: Option<u64>,
    style_records: u64,
    workbook_records: u64,
    in_sheet_data: bool,
    cell_started_at: Option<u64>,
    longest_cell: u64,
    event_too_large: bool,
}

impl XmlFindings {
    fn observe(&mut self, event: &Event<'_>, position: u64) {
        match event {
            Event::Start(start) => match start.local_name().as_ref() {
                "sst" => {
                    let declared = start.try_get_attribute("uniqueCount").ok().flatten();
                    self.declared_unique = declared.and_then(|attribute| attribute.value.parse().ok());
                }
                "si" => self.shared_strings += 1,
                "xf" | "font" | "fill" | "border" => self.style_records += 1,
                "sheet" | "definedName" => self.workbook_records += 1,
                "sheetData" => self.in_sheet_data = true,
                "c" if self.in_sheet_data => {
                    self.end_cell(position);
                    self.cell_started_at = Some(position);
                }
                _ => {}
            },
            Event::End(end) => match end.local_name().as_ref() {
                "c" | "row" => self.end_cell(position),
                "sheetData" => {
                    self.end_cell(position);
                    self.in_sheet_data = false;
                }
                _ => {}
            },
            _ => {}
        }
        if let Some(started) = self.cell_started_at {
            self.longest_cell = self.longest_cell.max(position - started);
        }
    }

    fn end_cell(&mut self, position: u64) {
        if let Some(started) = self.cell_started_at.take() {
            self.longest_cell = self.longest_cell.max(position - started);
        }
    }

    fn refuse_oversized(&self, name: &str, limits: &XlsxLimits) -> Result<(), FileError> {
        if self.event_too_large {
            return Err(FileError(format!(
                "the .xlsx entry {name:?} holds a single XML tag or text of more than {} MiB, more than any \
                 spreadsheet cell needs; it was not opened",
                limits.xml_event_bytes / MIB
            )));
        }
        if self.longest_cell > limits.cell_xml_bytes {
            return Err(FileError(format!(
                "the .xlsx entry {name:?} has a cell of more than {} MiB of XML (a cell holds at most 32,767 \
                 characters); it was not opened",
                limits.cell_xml_bytes / MIB
            )));
        }
        Ok(())
    }
}

/// Inflates an entry into a counter, at most `limit` bytes, tokenising it as calamine would. An entry that is
/// not XML (an image) stops the tokeniser at its first error; its bytes are still counted.
fn inflate_and_scan(entry: &mut impl Read, limit: u64, limits: &XlsxLimits) -> std::io::Result<(u64, XmlFindings)> {
    let mut source = Inflating {
        inner: entry,
        limit,
        total: 0,
        since_event: 0,
        event_limit: Some(limits.xml_event_bytes),
        event_too_large: false,
    };
    let mut found = XmlFindings::default();
    {
        let mut xml = quick_xml::Reader::from_reader(BufReader::with_capacity(64 * 1024, &mut source));
        // calamine's settings (`xlsx::xml_reader`), so events and positions are the ones it sees.
        let config = xml.config_mut();
        config.check_end_names = false;
        config.trim_text(false);
        config.check_comments = false;
        config.expand_empty_elements = true;
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match xml.read_event_into(&mut buffer) {
                Ok(Event::Eof) => break,
                Ok(event) => found.observe(&event, xml.buffer_position()),
                Err(quick_xml::Error::Io(error)) if !xml.get_ref().get_ref().event_too_large => {
                    return Err(std::io::Error::new(error.kind(), error.to_string()));
                }
                Err(_) => break,
            }
            if found.longest_cell > limits.cell_xml_bytes {
                break;
            }
            // What the tokeniser holds now is at most what its reader has buffered.
            let held = xml.get_ref().buffer().len() as u64;
            xml.get_mut().get_mut().since_event = held;
        }
    }
    found.event_too_large = source.event_too_large;
    if found.event_too_large || found.longest_cell > limits.cell_xml_bytes {
        return Ok((source.total, found));
    }
    source.event_limit = None;
    std::io::copy(&mut source, &mut std::io::sink())?;
    Ok((source.total, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A zip of the given entries, deflated, in a temporary file removed on drop.
    struct TempZip(std::path::PathBuf);

    impl TempZip {
        fn of(entries: &[(&str, &[u8])]) -> TempZip {
            let path = std::env::temp_dir().join(format!("crm-xlsx-check-{}.xlsx", uuid::Uuid::new_v4()));
            let mut writer = zip::ZipWriter::new(File::create(&path).expect("create"));
            let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            for (name, bytes) in entries {
                writer.start_file(*name, options).expect("entry");
                writer.write_all(bytes).expect("write");
            }
            writer.finish().expect("finish");
            TempZip(path)
        }
    }

    impl Drop for TempZip {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Bytes that do not compress (a xorshift stream), so an entry passes the ratio rule.
    fn noise(length: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    fn shared_strings_xml(texts: &[String], unique_count: Option<usize>) -> Vec<u8> {
        let declared = unique_count.map(|count| format!(" uniqueCount=\"{count}\"")).unwrap_or_default();
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" count=\"{}\"{declared}>",
            texts.len() * 8
        );
        for text in texts {
            xml.push_str(&format!("<si><t>{text}</t></si>"));
        }
        xml.push_str("</sst>");
        xml.into_bytes()
    }

    #[test]
    fn the_contract_limits_are_the_ones_applied() {
        assert_eq!(XlsxLimits::CONTRACT.inflated_bytes, 2 * 1024 * 1024 * 1024);
        assert_eq!((XlsxLimits::CONTRACT.ratio, XlsxLimits::CONTRACT.ratio_checked_above), (100, 100 * 1024));
        assert_eq!(XlsxLimits::CONTRACT.entries, 10_000);
    }

    #[test]
    fn a_bomb_is_refused_after_inflating_no_more_than_its_ratio_allows() {
        // 64 MiB of spaces deflate to about 64 KiB: 1000:1.
        let zip = TempZip::of(&[("xl/worksheets/sheet1.xml", &vec![b' '; 64 * 1024 * 1024])]);
        let compressed = std::fs::metadata(&zip.0).expect("metadata").len();
        let error = check_zip(&zip.0).expect_err("a bomb");
        assert!(error.0.contains("zip bomb") && error.0.contains("was not opened"), "{error}");
        // The counter stopped at the ratio cap: it never inflated the 64 MiB.
        let mut archive = zip::ZipArchive::new(File::open(&zip.0).expect("open")).expect("zip");
        let mut entry = archive.by_index(0).expect("entry");
        let cap = compressed * MAX_RATIO;
        let (counted, _) = inflate_and_scan(&mut entry, cap + 1, &XlsxLimits::CONTRACT).expect("inflate");
        assert_eq!(counted, cap + 1, "inflating stops one byte past the cap");
    }

    #[test]
    fn the_whole_archive_is_bounded_across_entries() {
        let limits = XlsxLimits { inflated_bytes: 3 * 1024 * 1024, ..XlsxLimits::CONTRACT };
        let megabyte = noise(1024 * 1024);
        let two = TempZip::of(&[("xl/media/a.bin", &megabyte), ("xl/media/b.bin", &megabyte)]);
        assert_eq!(check_zip_within(&two.0, &limits).expect("within").inflated_bytes, 2 * 1024 * 1024);
        let four = TempZip::of(&[
            ("xl/media/a.bin", &megabyte),
            ("xl/media/b.bin", &megabyte),
            ("xl/media/c.bin", &megabyte),
            ("xl/media/d.bin", &megabyte),
        ]);
        let error = check_zip_within(&four.0, &limits).expect_err("past the total");
        assert!(error.0.contains("inflates past 3 MiB"), "{error}");
    }

    #[test]
    fn entries_past_the_count_are_refused() {
        let limits = XlsxLimits { entries: 3, ..XlsxLimits::CONTRACT };
        let names: Vec<String> = (0..4).map(|i| format!("xl/part{i}.xml")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|name| (name.as_str(), &b"<a/>"[..])).collect();
        let error = check_zip_within(&TempZip::of(&entries).0, &limits).expect_err("too many");
        assert!(error.0.contains("4 entries; at most 3"), "{error}");
    }

    #[test]
    fn shared_strings_are_bounded_by_what_calamine_holds_not_by_references() {
        let texts: Vec<String> = (0..1000).map(|i| format!("lead{i}@example.com")).collect();
        let xml = shared_strings_xml(&texts, Some(1000));
        let zip = TempZip::of(&[("xl/sharedStrings.xml", &xml)]);
        let report = check_zip(&zip.0).expect("a legitimate table");
        let cost = report.shared_strings.expect("counted");
        assert_eq!((cost.strings, cost.declared_unique, cost.xml_bytes), (1000, 1000, xml.len() as u64));
        assert_eq!(cost.estimated_bytes(), 24 * 1000 + xml.len() as u64 + 15 * 1000);

        // The same table, with a budget just under its estimate.
        let tight = XlsxLimits { shared_strings_memory: cost.estimated_bytes() - 1, ..XlsxLimits::CONTRACT };
        let error = check_zip_within(&zip.0, &tight).expect_err("over the budget");
        assert!(error.0.contains("1000 texts") && error.0.contains("save the sheet as CSV"), "{error}");

        // A declared count calamine would reserve room for is bounded, whatever the table really holds.
        let lying = TempZip::of(&[("xl/sharedStrings.xml", &shared_strings_xml(&texts[..2], Some(4_000_000_000)))]);
        let error = check_zip(&lying.0).expect_err("a huge reservation");
        assert!(error.0.contains("declaring 4000000000 distinct texts"), "{error}");

        // Strings beyond the declared count are counted, as is a table without a count.
        let understated = TempZip::of(&[("xl/sharedStrings.xml", &shared_strings_xml(&texts, Some(1)))]);
        assert_eq!(check_zip(&understated.0).expect("fits").shared_strings.map(|cost| cost.strings), Some(1000));
        let undeclared = TempZip::of(&[("xl/sharedStrings.xml", &shared_strings_xml(&texts, None))]);
        assert_eq!(
            check_zip(&undeclared.0).expect("fits").shared_strings.map(|cost| (cost.strings, cost.declared_unique)),
            Some((1000, 0))
        );
    }

    #[test]
    fn a_full_sheet_of_unique_emails_and_phones_fits_the_shared_strings_budget() {
        // A generated sheet of 1,048,575 leads with a unique email and phone each, as measured: 2,102,308
        // strings in 82,874,494 bytes of XML.
        let sheet = SharedStringsCost { xml_bytes: 82_874_494, strings: 2_102_308, declared_unique: 2_102_308 };
        assert!(sheet.estimated_bytes() <= MAX_SHARED_STRINGS_MEMORY, "{} bytes", sheet.estimated_bytes());
        // Eight unique text columns on every one of those rows do not.
        let wide = SharedStringsCost { xml_bytes: 320 * MIB, strings: 8 * 1_048_575, declared_unique: 8 * 1_048_575 };
        assert!(wide.estimated_bytes() > MAX_SHARED_STRINGS_MEMORY);
    }

    #[test]
    fn styles_and_workbook_records_are_counted() {
        let limits = XlsxLimits { style_records: 10, workbook_records: 5, ..XlsxLimits::CONTRACT };
        let styles = |count: usize| {
            format!("<styleSheet><fonts><font/></fonts><cellXfs>{}</cellXfs></styleSheet>", "<xf/>".repeat(count))
        };
        let fits = TempZip::of(&[("xl/styles.xml", styles(9).as_bytes())]);
        assert!(check_zip_within(&fits.0, &limits).is_ok());
        let error = check_zip_within(&TempZip::of(&[("xl/styles.xml", styles(10).as_bytes())]).0, &limits)
            .expect_err("11 records");
        assert!(error.0.contains("11 cell formats, fonts, fills and borders; at most 10"), "{error}");
        let workbook = format!("<workbook><sheets>{}</sheets></workbook>", "<sheet name=\"s\"/>".repeat(6));
        let error =
            check_zip_within(&TempZip::of(&[("xl/book.xml", workbook.as_bytes())]).0, &limits).expect_err("6 sheets");
        assert!(error.0.contains("more than 5 sheets and defined names"), "{error}");
    }

    #[test]
    fn one_huge_tag_text_or_cell_is_refused_while_it_is_read() {
        let limits = XlsxLimits { xml_event_bytes: 256 * 1024, cell_xml_bytes: 512 * 1024, ..XlsxLimits::CONTRACT };
        let letters: String = noise(400 * 1024).iter().map(|byte| char::from(b'a' + byte % 26)).collect();
        let text = format!(
            "<worksheet><sheetData><row><c t=\"inlineStr\"><is><t>{letters}</t></is></c></row></sheetData></worksheet>"
        );
        let error = check_zip_within(&TempZip::of(&[("xl/worksheets/sheet1.xml", text.as_bytes())]).0, &limits)
            .expect_err("a huge text");
        assert!(error.0.contains("single XML tag or text"), "{error}");

        // Many runs, each small, joined into one cell.
        let run = format!("<r><t>{}</t></r>", &letters[..100 * 1024]);
        let rich = format!(
            "<worksheet><sheetData><row><c t=\"inlineStr\"><is>{}</is></c></row></sheetData></worksheet>",
            run.repeat(6)
        );
        let error = check_zip_within(&TempZip::of(&[("xl/worksheets/sheet1.xml", rich.as_bytes())]).0, &limits)
            .expect_err("a huge cell");
        assert!(error.0.contains("a cell of more than"), "{error}");

        // The same runs in separate cells are an ordinary sheet.
        let cells = format!(
            "<worksheet><sheetData><row>{}</row></sheetData></worksheet>",
            format!("<c t=\"inlineStr\"><is>{run}</is></c>").repeat(6)
        );
        assert!(check_zip_within(&TempZip::of(&[("xl/worksheets/sheet1.xml", cells.as_bytes())]).0, &limits).is_ok());
    }

    #[test]
    fn binary_entries_are_counted_not_refused() {
        let image = noise(3 * 1024 * 1024);
        let report = check_zip(&TempZip::of(&[("xl/media/image1.png", &image)]).0).expect("an image is fine");
        assert_eq!(report.inflated_bytes, image.len() as u64);
    }
}
