//! Uploaded file names as stored: a caller may send `../../x.csv`, `<script>` or a right-to-left override
//! (U+202E, which shows `gpj.exe` as `exe.jpg`), and every UI or CSV that later shows the name would trip on it
//! (issue 9). The stored name is cleaned; what the caller sent is kept only escaped, for display.

/// Longest stored name, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;

/// The name without any path, control or invisible direction characters, markup or characters Windows
/// refuses; never empty.
pub fn clean(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_direction_control(*c))
        .map(|c| if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut name: String = trimmed.chars().take(MAX_FILE_NAME_CHARS).collect();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        name = "upload".into();
    }
    name
}

/// The name as sent, with every character a display could misread written as `\u{…}`; `None` when the
/// cleaned name is the same.
pub fn escaped_original(raw: &str) -> Option<String> {
    if clean(raw) == raw {
        return None;
    }
    let escaped: String = raw
        .chars()
        .take(MAX_FILE_NAME_CHARS * 2)
        .map(|c| {
            if c.is_control() || is_direction_control(c) || matches!(c, '<' | '>' | '&' | '"' | '\'' | '\\') {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    Some(escaped)
}

/// Characters that change the direction text is shown in, and the zero-width marks of the same family.
fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{200B}'..='\u{200D}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_markup_and_direction_overrides_are_removed() {
        assert_eq!(clean("../../x.csv"), "x.csv");
        assert_eq!(clean("C:\\Users\\ann\\leads.xlsx"), "leads.xlsx");
        // The last "/" starts the base name, as in a path; the markup characters that remain become "_".
        assert_eq!(clean("<script>alert(1)</script>.csv"), "script_.csv");
        assert_eq!(clean("<b>leads</b>"), "b_");
        assert_eq!(clean("<img src=x onerror=alert(1)>.csv"), "_img src=x onerror=alert(1)_.csv");
    }

    #[test]
    fn names_are_never_empty_and_plain_names_pass_unchanged() {
        assert_eq!(clean("leads 2026 (final).csv"), "leads 2026 (final).csv");
        assert_eq!(escaped_original("leads 2026 (final).csv"), None);
        assert_eq!(clean("../"), "upload");
        assert_eq!(clean("\u{0}\u{7}"), "upload");
        assert_eq!(clean(".."), "upload");
    }

    #[test]
    fn the_original_is_kept_escaped() {
        assert_eq!(clean("invoice\u{202E}vsc.exe"), "invoicevsc.exe");
        assert_eq!(escaped_original("invoice\u{202E}vsc.exe").as_deref(), Some("invoice\\u{202e}vsc.exe"));
        assert_eq!(escaped_original("<b>.csv").as_deref(), Some("\\u{3c}b\\u{3e}.csv"));
    }
}
