//! The spec's character rules for protocol strings (topics, matchers, ids, types): no C0, DEL,
//! C1 or Unicode `Cf`. Only classifies; never rewrites or normalises the string.

use icu_properties::props::GeneralCategory;
use icu_properties::CodePointMapData;

use super::TopicError;

/// Checks the spec's character rules for topics, matchers, ids and types: no C0 (U+0000–U+001F),
/// DEL, C1 (U+0080–U+009F) or Unicode `Cf`. (UTF-8 validity is given by `&str`.)
pub fn check_chars(s: &str) -> Result<(), TopicError> {
    // Nearly every protocol string is printable ASCII, which has no `Cf` characters: a byte scan
    // settles it without consulting the Unicode tables.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(());
    }
    let categories = CodePointMapData::<GeneralCategory>::new();
    for c in s.chars() {
        // `char::is_control` is exactly general category `Cc`: C0, DEL and C1.
        if c.is_control() || categories.get(c) == GeneralCategory::Format {
            return Err(TopicError::ForbiddenCharacter);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(s: &str) -> bool {
        check_chars(s) == Err(TopicError::ForbiddenCharacter)
    }

    // Terminology (Topic): no C0 (U+0000–U+001F) nor DEL (U+007F); reference hub §8 items 1, 2, 32.
    #[test]
    fn rejects_c0_and_del() {
        for s in [
            "a\u{0}b",
            "https://a.example/x\u{0}https://b.example/y",
            "line\nfeed",
            "carriage\rreturn",
            "tab\there",
            "\u{1f}",
            "del\u{7f}",
        ] {
            assert!(rejected(s), "{s:?} should be rejected");
        }
    }

    // Terminology (Topic): no C1 (U+0080–U+009F); reference hub §8 item 1 (0x9F in `type`).
    #[test]
    fn rejects_c1() {
        for s in ["\u{80}", "x\u{85}y", "\u{9f}", "https://example.com/\u{9f}"] {
            assert!(rejected(s), "{s:?} should be rejected");
        }
    }

    // Terminology (Topic): no general category `Cf` (bidi and zero-width controls); reference
    // hub §8 item 15.
    #[test]
    fn rejects_format_characters() {
        for s in [
            "https://example.com/\u{202e}gpj.exe",
            "zero\u{200b}width",
            "\u{feff}bom",
            "isolate\u{2066}x\u{2069}",
            "soft\u{ad}hyphen",
            "tag\u{e007f}",
        ] {
            assert!(rejected(s), "{s:?} should be rejected");
        }
    }

    // Terminology (Topic): topics can be IRIs, so any other Unicode text is allowed; reference hub
    // §8 items 1 and 15 (ordinary URL, Arabic letters).
    #[test]
    fn accepts_printable_text() {
        for s in [
            "",
            "https://example.com/books/1?x=y#frag",
            "urn:uuid:e1ee88e2-532a-4d6f-ba70-f0f8bd584022",
            "message",
            "https://example.com/كتب/١",
            "مرحبا",
            "https://example.com/😀/🚀",
            "https://例え.jp/ページ",
            "\u{a0}nbsp is Zs, not Cf",
        ] {
            assert_eq!(check_chars(s), Ok(()), "{s:?} should be accepted");
        }
    }
}
