//! Files arrive as real exports do: UTF-8 with or without a byte-order mark, UTF-16 (either byte order, with
//! or without a mark), or Windows-1252 (what Excel on Windows writes as "CSV"). The encoding is decided from
//! the first bytes; everything after is transcoded to UTF-8 as it streams.

use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    Utf16Le,
    Utf16Be,
    Windows1252,
}

impl TextEncoding {
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf16Le => "UTF-16LE",
            TextEncoding::Utf16Be => "UTF-16BE",
            TextEncoding::Windows1252 => "Windows-1252",
        }
    }

    fn encoding_rs(self) -> &'static encoding_rs::Encoding {
        match self {
            TextEncoding::Utf8 => encoding_rs::UTF_8,
            TextEncoding::Utf16Le => encoding_rs::UTF_16LE,
            TextEncoding::Utf16Be => encoding_rs::UTF_16BE,
            TextEncoding::Windows1252 => encoding_rs::WINDOWS_1252,
        }
    }
}

/// How many leading bytes `detect` wants to see.
pub const SAMPLE_BYTES: usize = 64 * 1024;

/// Decides a file's encoding from its first bytes (up to `SAMPLE_BYTES`).
pub fn detect(sample: &[u8]) -> TextEncoding {
    if sample.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return TextEncoding::Utf8;
    }
    if sample.starts_with(&[0xFF, 0xFE]) {
        return TextEncoding::Utf16Le;
    }
    if sample.starts_with(&[0xFE, 0xFF]) {
        return TextEncoding::Utf16Be;
    }
    // UTF-16 without a mark: text in Latin script puts a zero in every other byte.
    let pairs = sample.len() / 2;
    if pairs >= 2 {
        let zero_odd = sample.chunks_exact(2).filter(|pair| pair[1] == 0 && pair[0] != 0).count();
        let zero_even = sample.chunks_exact(2).filter(|pair| pair[0] == 0 && pair[1] != 0).count();
        if zero_odd * 10 >= pairs * 7 {
            return TextEncoding::Utf16Le;
        }
        if zero_even * 10 >= pairs * 7 {
            return TextEncoding::Utf16Be;
        }
    }
    match std::str::from_utf8(sample) {
        Ok(_) => TextEncoding::Utf8,
        // A sample cut inside a multi-byte character is still UTF-8.
        Err(error) if error.error_len().is_none() => TextEncoding::Utf8,
        Err(_) => TextEncoding::Windows1252,
    }
}

/// A reader of UTF-8 text from a reader of bytes in `encoding`; a byte-order mark is dropped.
pub fn utf8_reader<R: Read>(encoding: TextEncoding, bytes: R) -> impl Read {
    encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding.encoding_rs()))
        .bom_override(true)
        .build(bytes)
}

/// Decodes a whole (small) buffer; for tests and samples.
pub fn decode_all(bytes: &[u8]) -> (TextEncoding, String) {
    let encoding = detect(&bytes[..bytes.len().min(SAMPLE_BYTES)]);
    let mut text = String::new();
    // Reading from memory cannot fail; invalid sequences become U+FFFD.
    let _ = utf8_reader(encoding, bytes).read_to_string(&mut text);
    (encoding, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(path: &str) -> Vec<u8> {
        let full = format!("{}/../../shared/corpora/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&full).unwrap_or_else(|error| panic!("the test corpus {full} is missing: {error}"))
    }

    #[test]
    fn the_same_text_reads_alike_in_every_encoding() {
        let text = "first_name;email\nRené;rene@example.com\nZoë;zoe@example.com\n";
        let utf16le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let utf16be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let (windows1252, _, _) = encoding_rs::WINDOWS_1252.encode(text);
        let cases: Vec<(Vec<u8>, TextEncoding)> = vec![
            (text.as_bytes().to_vec(), TextEncoding::Utf8),
            ([&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat(), TextEncoding::Utf8),
            ([&[0xFF, 0xFE][..], &utf16le].concat(), TextEncoding::Utf16Le),
            ([&[0xFE, 0xFF][..], &utf16be].concat(), TextEncoding::Utf16Be),
            (utf16le, TextEncoding::Utf16Le),
            (utf16be, TextEncoding::Utf16Be),
            (windows1252.into_owned(), TextEncoding::Windows1252),
        ];
        for (bytes, expected) in cases {
            let (encoding, decoded) = decode_all(&bytes);
            assert_eq!(encoding, expected);
            assert_eq!(decoded, text, "{expected:?}");
        }
    }

    #[test]
    fn real_exports_in_the_corpus_decode() {
        assert_eq!(
            decode_all(&corpus("csvkit/test_latin1.csv")),
            (TextEncoding::Windows1252, "a,b,c\n1,2,3\n4,5,©".into())
        );
        let (encoding, text) = decode_all(&corpus("csvkit/test_utf16_big.csv"));
        assert_eq!((encoding, text.lines().next()), (TextEncoding::Utf16Be, Some("a,b,c")));
        let (encoding, text) = decode_all(&corpus("csvkit/test_utf16_little.csv"));
        assert_eq!((encoding, text.lines().next()), (TextEncoding::Utf16Le, Some("a,b,c")));
        let (encoding, text) = decode_all(&corpus("csvkit/test_utf8_bom.csv"));
        assert_eq!((encoding, text.lines().next()), (TextEncoding::Utf8, Some("foo,bar,baz")), "the mark is dropped");
        assert!(text.ends_with("4,5,ʤ\n"));
    }

    #[test]
    fn a_sample_cut_inside_a_character_is_still_utf8() {
        let bytes = "naïve".as_bytes();
        assert_eq!(detect(&bytes[..3]), TextEncoding::Utf8);
    }
}
