//! Text as people type it, made safe to store and to compare.
//!
//! Names (pseudonyms, login names, display names, circle names, device
//! labels, e-mail addresses) are what others read and trust, so they pass
//! [`name`]: one normal form (NFC, so a decomposed "e + ◌̈" is the same "ë"
//! as everyone else's), and nothing that shows nothing or changes how the
//! rest shows (bidi controls, zero-width characters, fillers). Look-alike
//! names are told apart by [`skeleton_key`] (Unicode TR39). Control
//! characters other than tab and newline are refused in every text field of
//! every JSON body by the extractor ([`is_forbidden_control`]).

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The message every name validator gives for [`name`]'s refusal.
pub const INVISIBLE: &str = "must not contain control or invisible characters \
     (such as zero-width characters or direction marks)";

/// A control character that no text field takes: every Unicode Cc but tab
/// and newline (a lone carriage return would hide a line's start, an escape
/// would drive a terminal that shows a log or an export).
pub fn is_forbidden_control(c: char) -> bool {
    c.is_control() && c != '\t' && c != '\n'
}

/// A character that is not seen, or that changes how its neighbours are
/// seen: every format character (Unicode Cf: bidi embeddings, overrides and
/// isolates, zero-width space and joiners, the byte-order mark, the soft
/// hyphen, invisible operators, tags), the Hangul fillers (letters by
/// category, blank on screen), the combining grapheme joiner, the Khmer
/// inherent vowels and the blank Braille pattern.
pub fn is_invisible(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
        || matches!(
            c,
            '\u{115f}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{ffa0}'
                | '\u{034f}'
                | '\u{17b4}'
                | '\u{17b5}'
                | '\u{2800}'
        )
}

/// A name as it is stored: in NFC, without control or invisible
/// characters. Length limits and trimming are the caller's.
pub fn name(input: &str) -> Result<String, String> {
    if input.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(INVISIBLE.into());
    }
    Ok(input.nfc().collect())
}

/// The form in which two names that a reader cannot tell apart are equal:
/// the TR39 confusable skeleton of the lower-cased name, lower-cased again
/// (the skeleton maps some letters to upper-case prototypes, such as `0` to
/// `O`). "Worker b" with a Cyrillic е, "WORKER B" and "w0rker b" share one.
pub fn skeleton_key(name: &str) -> String {
    unicode_security::skeleton(&name.to_lowercase())
        .collect::<String>()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_composed_and_invisible_characters_refused() {
        assert_eq!(name("Zoe\u{308}").as_deref(), Ok("Zo\u{eb}"));
        for bad in [
            "a\u{200b}b",
            "a\u{200d}b",
            "a\u{202e}b",
            "a\u{2066}b",
            "a\u{feff}b",
            "a\u{ad}b",
            "a\u{3164}b",
            "\u{115f}ab",
            "a\u{e0041}b",
            "a\u{7}b",
            "a\tb",
        ] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
        // Emoji with a variation selector stay welcome.
        assert!(name("Hart \u{2764}\u{fe0f}").is_ok());
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        let key = skeleton_key("Worker b");
        for same in ["Work\u{435}r b", "WORKER B", "w0rker b", "Worker b"] {
            assert_eq!(skeleton_key(same), key, "{same:?}");
        }
        assert_eq!(skeleton_key("Zo\u{eb}"), skeleton_key("Zoe\u{308}"));
        assert_ne!(skeleton_key("Zo\u{eb}"), skeleton_key("Zoe"));
        assert_ne!(skeleton_key("Worker b"), skeleton_key("Worker c"));
    }

    #[test]
    fn only_tab_and_newline_pass_as_controls() {
        assert!(!is_forbidden_control('\t'));
        assert!(!is_forbidden_control('\n'));
        for c in ['\r', '\u{1b}', '\u{0}', '\u{7f}', '\u{85}'] {
            assert!(is_forbidden_control(c), "{c:?}");
        }
    }
}
