//! Field schemas. Each names the rules that one of Kring's validators
//! enforces, so that the spec states them and a client (or a fuzzer) that
//! follows the spec sends what the server accepts. Limits count characters as
//! sent; texts are trimmed only after that.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};

/// Unicode White_Space: what `str::trim` strips and `char::is_whitespace` finds.
const WHITE_SPACE: &str =
    r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Unicode Cc: what `char::is_control` finds.
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// White_Space without the control characters among it.
const SPACES: &str = r" \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Control characters that no text field takes: all but tab and newline
/// (`crate::http::text::is_forbidden_control`).
const LINE_CONTROL: &str = r"\x00-\x08\x0b-\x1f\x7f-\x9f";

/// The invisible characters of the Basic Multilingual Plane
/// (`crate::http::text::is_invisible`) as ranges for a character class. The
/// few beyond it (tags, some format characters of historic scripts) need a
/// regex flag that JSON Schema does not give; the descriptions name them.
fn invisible_class() -> String {
    let mut out = String::new();
    let mut start: Option<u32> = None;
    let flush = |from: u32, to: u32, out: &mut String| {
        out.push_str(&format!("\\u{from:04x}"));
        if to > from {
            out.push_str(&format!("-\\u{to:04x}"));
        }
    };
    for cp in 0..=0xffff_u32 {
        let invisible = char::from_u32(cp).is_some_and(crate::http::text::is_invisible);
        match (invisible, start) {
            (true, None) => start = Some(cp),
            (false, Some(from)) => {
                flush(from, cp - 1, &mut out);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        flush(from, 0xffff, &mut out);
    }
    out
}

/// Text that, trimmed, holds at least `min` characters (0, 1 or 2) and no
/// control or invisible characters.
pub fn plain_text_pattern(min: usize) -> String {
    let (w, c) = (WHITE_SPACE, format!("{CONTROL}{}", invisible_class()));
    let core = match min {
        0 => format!("([^{w}{c}]([^{c}]*[^{w}{c}])?)?"),
        1 => format!("[^{w}{c}]([^{c}]*[^{w}{c}])?"),
        _ => format!("[^{w}{c}][^{c}]*[^{w}{c}]"),
    };
    format!("^[{SPACES}]*{core}[{SPACES}]*$")
}

/// Lines of text: not blank, no control characters but tab and newline.
pub fn lines_pattern() -> String {
    free_text_pattern(true)
}

/// Free text without control characters but tab and newline; when
/// `required`, with something besides white space.
pub fn free_text_pattern(required: bool) -> String {
    let c = LINE_CONTROL;
    if required {
        format!("^[^{c}]*[^{WHITE_SPACE}{c}][^{c}]*$")
    } else {
        format!("^[^{c}]*$")
    }
}

fn text_schema(description: &str, max: usize, pattern: String, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .examples([example])
        .into()
}

macro_rules! text_schemas {
    ($($name:ident: $description:literal, max $max:literal, $pattern:expr, $example:literal;)*) => {
        $(
            #[doc = $description]
            pub struct $name;

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    text_schema($description, $max, $pattern, $example)
                }
            }

            impl ToSchema for $name {}
        )*
    };
}

text_schemas! {
    Name: "A name: up to 80 characters, not blank, no control or invisible characters (Unicode Cf such as zero-width characters and direction marks, Hangul fillers); stored in NFC.",
        max 80, plain_text_pattern(1), "Samen sterk";
    Theme: "What a circle is about: up to 200 characters, no control or invisible characters (Unicode Cf such as zero-width characters and direction marks, Hangul fillers); stored in NFC; may be blank.",
        max 200, plain_text_pattern(0), "Eenzaamheid na pensioen";
    DeviceLabel: "A name you recognise for a device: up to 60 characters, no control or invisible characters (Unicode Cf such as zero-width characters and direction marks, Hangul fillers); stored in NFC; blank means none.",
        max 60, plain_text_pattern(0), "iPhone";
    AgreementText: "A circle's agreement: up to 4000 characters, not blank, no control characters but tab and newline.",
        max 4000, free_text_pattern(true), "Jij bepaalt wanneer je schrijft.";
    PostBody: "A post: up to 4000 characters, not blank, no control characters but tab and newline.",
        max 4000, lines_pattern(), "Vandaag voor het eerst weer een wandeling gemaakt.";
    HideReason: "Why a post was hidden, for the other staff: up to 500 characters, not blank, no control characters but tab and newline.",
        max 500, free_text_pattern(true), "Persoonlijke gegevens van een ander lid";
    MessageText: "A personal message: up to 500 characters, not blank, no control characters but tab and newline.",
        max 500, free_text_pattern(true), "Ik dacht even aan je. Hoe gaat het?";
    Note: "A short note: up to 1000 characters, no control characters but tab and newline; blank means none.",
        max 1000, free_text_pattern(false), "Goed geslapen.";
    Statement: "A statement for the record: up to 1000 characters, not blank, no control characters but tab and newline.",
        max 1000, free_text_pattern(true), "Toestemming van de auteurs per e-mail, 3 maart 2026.";
}

/// A name made of lower-case ASCII letters, digits and a few marks, as
/// keys and moment names are.
fn key_schema(description: &str, pattern: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .examples([example])
        .into()
}

/// A moment of a measurement plan: 1 to 40 lower-case letters, digits and
/// `_`, starting with a letter.
pub struct MomentName;

impl PartialSchema for MomentName {
    fn schema() -> RefOr<Schema> {
        key_schema(
            "A moment of a measurement plan (`intake`, `week_6`, `month_3`, …): 1 to 40 lower-case letters, digits and `_`, starting with a letter.",
            "^[a-z][a-z0-9_]{0,39}$",
            "week_6",
        )
    }
}

impl ToSchema for MomentName {}

/// An instrument's key: lower-case letters, digits, `_` and `-`.
pub struct InstrumentKey;

impl PartialSchema for InstrumentKey {
    fn schema() -> RefOr<Schema> {
        key_schema(
            "An instrument's key (`who5`, `djg6`, or one an organisation imported): lower-case letters, digits, `_` and `-`.",
            "^[a-z0-9_-]{1,64}$",
            "who5",
        )
    }
}

impl ToSchema for InstrumentKey {}

/// An ISO weekday: 1 = Monday … 7 = Sunday.
pub struct Weekday;

impl PartialSchema for Weekday {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .description(Some("An ISO weekday: 1 = Monday … 7 = Sunday."))
            .minimum(Some(1))
            .maximum(Some(7))
            .into()
    }
}

impl ToSchema for Weekday {}

#[cfg(test)]
mod tests {
    /// The characters of `WHITE_SPACE` are exactly those Rust calls white
    /// space, so the patterns trim what the validators trim.
    #[test]
    fn white_space_is_what_trim_strips() {
        let listed = |c: char| {
            matches!(
                c,
                '\t' | '\n'
                    | '\u{b}'
                    | '\u{c}'
                    | '\r'
                    | ' '
                    | '\u{85}'
                    | '\u{a0}'
                    | '\u{1680}'
                    | '\u{2000}'
                    ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
            )
        };
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            assert_eq!(c.is_whitespace(), listed(c), "{c:?}");
        }
        assert_eq!(
            super::WHITE_SPACE,
            r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
        );
    }

    /// `CONTROL` is Unicode Cc, what `char::is_control` finds.
    #[test]
    fn control_is_what_is_control_finds() {
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let listed = matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}');
            assert_eq!(c.is_control(), listed, "{c:?}");
        }
        assert_eq!(super::CONTROL, r"\x00-\x1f\x7f-\x9f");
    }
}
