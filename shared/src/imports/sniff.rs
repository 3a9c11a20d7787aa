//! Which delimiter a CSV file uses: comma, semicolon (European Excel), tab or pipe. Each candidate parses the
//! first lines with a real CSV reader (so delimiters inside quotes do not count); the winner splits the most
//! records into the same number of fields, and more than one.

pub const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Records looked at.
const SAMPLE_RECORDS: usize = 50;

pub fn delimiter(sample: &str) -> u8 {
    sniff(sample).delimiter
}

/// What the sample says about the file's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub delimiter: u8,
    /// Sampled records (the header among them) as wide as the header, with this delimiter.
    pub matching: usize,
    /// Sampled records of another width: the reader compares readings of the sample by them.
    pub ragged: usize,
}

pub fn sniff(sample: &str) -> Sniffed {
    // The last line of a sample may be cut short; it is left out when there are others.
    let sample = match sample.rfind(['\n', '\r']) {
        Some(end) if end > 0 => &sample[..end],
        _ => sample,
    };
    let mut best = Sniffed { delimiter: b',', matching: 0, ragged: 0 };
    let mut best_width = 0;
    for candidate in CANDIDATES {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(candidate)
            .has_headers(false)
            .flexible(true)
            .from_reader(sample.as_bytes());
        let widths: Vec<usize> = reader
            .records()
            .take(SAMPLE_RECORDS)
            .filter_map(Result::ok)
            .filter(|record| !(record.len() == 1 && record[0].trim().is_empty()))
            .map(|record| record.len())
            .collect();
        let Some(header_width) = widths.first().copied() else { continue };
        if header_width < 2 {
            continue;
        }
        let matching = widths.iter().filter(|width| **width == header_width).count();
        if (matching, header_width) > (best.matching, best_width) {
            best = Sniffed { delimiter: candidate, matching, ragged: widths.len() - matching };
            best_width = header_width;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_delimiter_is_found() {
        assert_eq!(delimiter("a,b,c\n1,2,3\n"), b',');
        assert_eq!(delimiter("name;amount\n\"Smith, John\";1,5\nDoe;2,0\n"), b';', "commas inside values and quotes");
        assert_eq!(delimiter("a\tb\tc\n1\t2\t3\n"), b'\t');
        assert_eq!(delimiter("a|b|c\r1|2|3\r"), b'|', "CR line ends");
        assert_eq!(delimiter("\"a,b\";c\n\"1,2\";3\n"), b';');
    }

    #[test]
    fn a_single_column_falls_back_to_comma() {
        assert_eq!(delimiter("email\na@example.com\n"), b',');
        assert_eq!(delimiter(""), b',');
    }

    #[test]
    fn quoted_newlines_and_a_cut_last_line_do_not_confuse_it() {
        assert_eq!(delimiter("a;b;c\n\"multi\nline\";2;3\n4;5;6\n7;8"), b';');
    }
}
