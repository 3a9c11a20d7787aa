//! PDF exports with printpdf: A4 landscape pages, a title block on the first (entity, filters, row count, when
//! and for whom it was made, in the tenant's time zone), the header row repeated on every page, and
//! "Page n of N" on each. Text is set in WenQuanYi Micro Hei (Debian's fonts-wqy-microhei), which covers Latin
//! with its accents and CJK alike, so one font serves every cell; the header and title are DejaVu Sans Bold
//! (fonts-dejavu-core). Both are installed by the project's scripts; `PDF_FONT` and `PDF_BOLD_FONT` name
//! others. Only the glyphs used are embedded, with a ToUnicode map, so the text can be searched and extracted.
//!
//! printpdf builds the whole document in memory before writing it, so each row is one text operation (the
//! cells placed with offsets) rather than one per cell, and exports are capped at `PDF_MAX_ROWS`.

use super::{Cell, ExportWriter, Title};
use chrono_tz::Tz;
use printpdf::{
    Color, FontId, Line, LinePoint, Mm, Op, ParsedFont, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt,
    Rect, Rgb, TextItem, TextMatrix,
};

pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";
pub const DEFAULT_BOLD_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";

const PAGE_WIDTH: f32 = 841.89;
const PAGE_HEIGHT: f32 = 595.28;
const MARGIN: f32 = 28.0;
const FONT_SIZE: f32 = 8.0;
const ROW_HEIGHT: f32 = 14.0;
const CELL_PADDING: f32 = 3.0;
/// Room for the title block on the first page.
const TITLE_HEIGHT: f32 = 58.0;
const FOOTER_HEIGHT: f32 = 20.0;

struct Font {
    id: FontId,
    parsed: ParsedFont,
}

impl Font {
    fn load(doc: &mut PdfDocument, path: &str) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|error| anyhow::anyhow!("the PDF font {path} cannot be read ({error}); run scripts/up"))?;
        let parsed = ParsedFont::from_bytes(&bytes, 0, &mut Vec::new())
            .ok_or_else(|| anyhow::anyhow!("the PDF font {path} could not be parsed"))?;
        Ok(Self { id: doc.add_font(&parsed), parsed })
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        let units = f32::from(self.parsed.pdf_font_metrics.units_per_em.max(1));
        let advance: f32 = text
            .chars()
            .map(|c| {
                self.parsed
                    .lookup_glyph_index(u32::from(c))
                    .map_or(0.0, |glyph| f32::from(self.parsed.get_horizontal_advance(glyph)))
            })
            .sum();
        advance * size / units
    }

    /// `text` cut to `room` points, with an ellipsis when cut.
    fn fit(&self, text: &str, size: f32, room: f32) -> String {
        if self.width(text, size) <= room {
            return text.to_owned();
        }
        let ellipsis = self.width("…", size);
        let mut used = 0.0;
        let mut out = String::new();
        let mut buffer = [0u8; 4];
        for c in text.chars() {
            let width = self.width(c.encode_utf8(&mut buffer), size);
            if used + width + ellipsis > room {
                break;
            }
            used += width;
            out.push(c);
        }
        out.push('…');
        out
    }
}

/// A page being filled: its title and header drawing, then its rows' text (set as one text section when the
/// page is done) and the heights of the rules under them: three operations a row.
#[derive(Default)]
struct Page {
    head: Vec<Op>,
    rows: Vec<Op>,
    rules: Vec<f32>,
}

pub struct PdfExport {
    doc: PdfDocument,
    path: std::path::PathBuf,
    regular: Font,
    bold: Font,
    header: Vec<String>,
    column_width: f32,
    zone: Tz,
    title: Title,
    pages: Vec<Page>,
    /// Where the next row's baseline goes on the current page.
    cursor: f32,
}

impl PdfExport {
    pub fn create(path: &std::path::Path, header: &[&str], zone: Tz, title: Title) -> anyhow::Result<Self> {
        let mut doc = PdfDocument::new(&title.heading);
        let regular_path = std::env::var("PDF_FONT").unwrap_or_else(|_| DEFAULT_FONT.to_owned());
        let bold_path = std::env::var("PDF_BOLD_FONT").unwrap_or_else(|_| DEFAULT_BOLD_FONT.to_owned());
        let regular = Font::load(&mut doc, &regular_path)?;
        let bold = Font::load(&mut doc, &bold_path)?;
        let columns = header.len().max(1) as f32;
        let mut export = Self {
            doc,
            path: path.to_owned(),
            regular,
            bold,
            header: header.iter().map(|name| (*name).to_owned()).collect(),
            column_width: (PAGE_WIDTH - 2.0 * MARGIN) / columns,
            zone,
            title,
            pages: Vec::new(),
            cursor: 0.0,
        };
        export.new_page();
        Ok(export)
    }

    fn new_page(&mut self) {
        let mut ops = Vec::new();
        let mut top = PAGE_HEIGHT - MARGIN;
        if self.pages.is_empty() {
            let made_at = self.title.made_at.with_timezone(&self.zone).format("%Y-%m-%d %H:%M %Z").to_string();
            let lines = [
                (14.0, self.title.heading.clone()),
                (9.0, format!("{} rows · made {made_at} for {}", self.title.row_count, self.title.made_for)),
                (9.0, self.title.filters.clone()),
            ];
            let mut y = top - 14.0;
            for (size, text) in lines {
                let text = self.bold.fit(&text, size, PAGE_WIDTH - 2.0 * MARGIN);
                text_at(&mut ops, &self.bold.id, size, MARGIN, y, vec![TextItem::Text(text)]);
                y -= size + 8.0;
            }
            top -= TITLE_HEIGHT;
        }
        // The header row: a shaded band with the column names in bold.
        ops.push(Op::SetFillColor { col: Color::Rgb(Rgb::new(0.88, 0.9, 0.93, None)) });
        ops.push(Op::DrawRectangle {
            rectangle: Rect {
                x: Pt(MARGIN),
                y: Pt(top - ROW_HEIGHT),
                width: Pt(PAGE_WIDTH - 2.0 * MARGIN),
                height: Pt(ROW_HEIGHT),
                mode: Some(printpdf::PaintMode::Fill),
                winding_order: None,
            },
        });
        ops.push(Op::SetFillColor { col: Color::Rgb(Rgb::new(0.0, 0.0, 0.0, None)) });
        let names: Vec<String> = self.header.clone();
        let items = self.row_items(&self.bold, &names);
        text_at(&mut ops, &self.bold.id, FONT_SIZE, MARGIN + CELL_PADDING, top - ROW_HEIGHT + 4.0, items);
        self.cursor = top - 2.0 * ROW_HEIGHT + 4.0;
        self.pages.push(Page { head: ops, ..Page::default() });
    }

    /// A row's cells as one run of text: each cell fitted to its column, then an offset to the next column.
    fn row_items(&self, font: &Font, cells: &[String]) -> Vec<TextItem> {
        let room = self.column_width - 2.0 * CELL_PADDING;
        let mut items = Vec::with_capacity(cells.len() * 2);
        for (index, cell) in cells.iter().enumerate() {
            let text = font.fit(cell, FONT_SIZE, room);
            let width = font.width(&text, FONT_SIZE);
            items.push(TextItem::Text(text));
            if index + 1 < cells.len() {
                // Offsets are in thousandths of the font size, positive to the left.
                items.push(TextItem::Offset(-(self.column_width - width) * 1000.0 / FONT_SIZE));
            }
        }
        items
    }
}

fn text_at(ops: &mut Vec<Op>, font: &FontId, size: f32, x: f32, y: f32, items: Vec<TextItem>) {
    ops.push(Op::StartTextSection);
    ops.push(Op::SetFont { font: PdfFontHandle::External(font.clone()), size: Pt(size) });
    ops.push(Op::SetTextMatrix { matrix: TextMatrix::Translate(Pt(x), Pt(y)) });
    ops.push(Op::ShowText { items });
    ops.push(Op::EndTextSection);
}

/// Line breaks and other control characters become spaces: a PDF row is one line.
fn one_line(text: String) -> String {
    if text.chars().any(char::is_control) {
        text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
    } else {
        text
    }
}

impl ExportWriter for PdfExport {
    fn write_row(&mut self, cells: &[Cell]) -> anyhow::Result<()> {
        if self.cursor < MARGIN + FOOTER_HEIGHT {
            self.new_page();
        }
        let texts: Vec<String> = cells.iter().map(|cell| one_line(cell.to_text(self.zone))).collect();
        let items = self.row_items(&self.regular, &texts);
        let y = self.cursor;
        if let Some(page) = self.pages.last_mut() {
            page.rows.push(Op::SetTextMatrix { matrix: TextMatrix::Translate(Pt(MARGIN + CELL_PADDING), Pt(y)) });
            page.rows.push(Op::ShowText { items });
            page.rules.push(y - 4.0);
        }
        self.cursor -= ROW_HEIGHT;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        let total = self.pages.len();
        let pages: Vec<PdfPage> = std::mem::take(&mut self.pages)
            .into_iter()
            .enumerate()
            .map(|(index, page)| {
                let mut ops = page.head;
                ops.push(Op::SetOutlineThickness { pt: Pt(0.2) });
                for y in page.rules {
                    let point = |x: f32| LinePoint { p: Point { x: Pt(x), y: Pt(y) }, bezier: false };
                    ops.push(Op::DrawLine {
                        line: Line { points: vec![point(MARGIN), point(PAGE_WIDTH - MARGIN)], is_closed: false },
                    });
                }
                ops.push(Op::StartTextSection);
                ops.push(Op::SetFont { font: PdfFontHandle::External(self.regular.id.clone()), size: Pt(FONT_SIZE) });
                ops.extend(page.rows);
                ops.push(Op::EndTextSection);
                let footer = format!("Page {} of {total}", index + 1);
                let x = PAGE_WIDTH - MARGIN - self.regular.width(&footer, FONT_SIZE);
                text_at(&mut ops, &self.regular.id, FONT_SIZE, x, MARGIN, vec![TextItem::Text(footer)]);
                PdfPage::new(Mm(297.0), Mm(210.0), ops)
            })
            .collect();
        let mut warnings = Vec::new();
        let file = std::fs::File::create(&self.path)?;
        let mut output = std::io::BufWriter::new(file);
        self.doc.with_pages(pages).save_writer(&mut output, &PdfSaveOptions::default(), &mut warnings);
        std::io::Write::flush(&mut output)?;
        Ok(())
    }
}
