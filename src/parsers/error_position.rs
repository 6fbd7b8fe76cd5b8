//! Where in a payload a parsing error points, read back from a parsing-log row (its stored
//! error text and payload), so that the page can show the spot: a line and column of the text
//! for a payload that is not JSON, the JSON pointer of the refused value for one that is.

use serde::Serialize;
use serde_json::Value;

use super::decode::{check_depth, MAX_DEPTH};
use super::errors::ParseError;

/// Where an error points inside a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ErrorPosition {
    /// The payload is not JSON: the place it stops being JSON, 1-based, the column counted in
    /// characters (Unicode code points) of the payload text as stored.
    Text { line: usize, column: usize },
    /// The payload is JSON and a rule refused a value: its JSON pointer ("" is the whole
    /// payload). The value may be absent when the rule asked for it.
    Value { pointer: String },
}

/// The start of each error text the position can be read back from; the tests below check
/// them against `ParseError`'s own messages.
const INVALID_JSON: &str = "payload is not valid JSON: ";
const TOO_DEEP: &str = "payload nests arrays/objects deeper than ";
const SCHEMA: &str = "payload does not match the parser's JSON Schema: ";
const INVALID_VALUE: &str = "invalid value at ";
const ROOT_LABEL: &str = "(root)";

const BYTE_ORDER_MARK: char = '\u{feff}';

/// The position `error` (a parsing-log row's text) points at in `payload`, when it names one.
pub fn error_position(error: &str, payload: &[u8]) -> Option<ErrorPosition> {
    if error.starts_with(INVALID_JSON) || error.starts_with(TOO_DEEP) {
        return text_position(payload);
    }
    let named = error
        .strip_prefix(SCHEMA)
        .or_else(|| error.strip_prefix(INVALID_VALUE))?;
    pointer_in(named, payload).map(|pointer| ErrorPosition::Value { pointer })
}

/// Decodes the payload the way the pipeline does and reports where that stops.
fn text_position(payload: &[u8]) -> Option<ErrorPosition> {
    let stored = std::str::from_utf8(payload).ok()?;
    let text = stored.strip_prefix(BYTE_ORDER_MARK).unwrap_or(stored);
    let (line, column) = match check_depth(text.as_bytes(), MAX_DEPTH) {
        Err(ParseError::TooDeep { offset, .. }) => line_and_column_of(text, offset),
        _ => {
            let error = serde_json::from_str::<serde::de::IgnoredAny>(text).err()?;
            // serde_json counts the column in bytes up to and including the offending one.
            let line_start = line_start(text, error.line())?;
            let last_byte = (line_start + error.column())
                .saturating_sub(1)
                .max(line_start);
            let (_, column) = line_and_column_of(text, last_byte.min(text.len()));
            (error.line(), column)
        }
    };
    // The stored text the page shows still has the mark that decoding skipped.
    let column = if line == 1 && text.len() != stored.len() {
        column + 1
    } else {
        column
    };
    Some(ErrorPosition::Text { line, column })
}

/// The byte index where 1-based `line` starts.
fn line_start(text: &str, line: usize) -> Option<usize> {
    if line <= 1 {
        return Some(0);
    }
    text.match_indices('\n')
        .nth(line - 2)
        .map(|(index, _)| index + 1)
}

/// The 1-based line and character column of the character holding byte `offset`; an offset
/// at the end of the text is one column past its last character.
fn line_and_column_of(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = 1 + before.iter().filter(|&&byte| byte == b'\n').count();
    let start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |index| index + 1);
    let column = 1 + text[start..]
        .char_indices()
        .take_while(|(index, _)| start + index < offset)
        .count();
    // `offset` may sit inside a character; that character is the one meant.
    let inside = !text.is_char_boundary(offset.min(text.len()));
    (line, if inside { column - 1 } else { column })
}

/// The pointer at the start of `named` ("<pointer>: <what is wrong>…"). A pointer may itself
/// hold ": " (object keys can), so of the possible cuts the longest that names a value of the
/// payload wins, else the first.
fn pointer_in(named: &str, payload: &[u8]) -> Option<String> {
    if named.starts_with(&format!("{ROOT_LABEL}: ")) {
        return Some(String::new());
    }
    if !named.starts_with('/') {
        return None;
    }
    let cuts: Vec<&str> = named
        .match_indices(": ")
        .map(|(index, _)| &named[..index])
        .collect();
    let document = std::str::from_utf8(payload)
        .ok()
        .map(|text| text.strip_prefix(BYTE_ORDER_MARK).unwrap_or(text))
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    let resolving = document.as_ref().and_then(|document| {
        cuts.iter()
            .rev()
            .find(|cut| document.pointer(cut).is_some())
    });
    resolving.or(cuts.first()).map(|cut| cut.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsers::decode_payload;

    fn text(line: usize, column: usize) -> Option<ErrorPosition> {
        Some(ErrorPosition::Text { line, column })
    }

    fn value(pointer: &str) -> Option<ErrorPosition> {
        Some(ErrorPosition::Value {
            pointer: pointer.into(),
        })
    }

    /// The error the pipeline would store for `payload`, and the position read back from it.
    fn decoded(payload: &[u8]) -> Option<ErrorPosition> {
        let error = decode_payload(payload, 1 << 20).expect_err("does not decode");
        error_position(&error.to_string(), payload)
    }

    #[test]
    fn the_prefixes_are_those_of_the_errors() {
        let messages = [
            (ParseError::InvalidJson("x".into()), INVALID_JSON),
            (
                ParseError::TooDeep {
                    limit: 1,
                    offset: 1,
                },
                TOO_DEEP,
            ),
            (ParseError::Schema(vec!["(root): x".into()]), SCHEMA),
            (ParseError::invalid("/a", "x"), INVALID_VALUE),
        ];
        for (error, prefix) in messages {
            assert!(error.to_string().starts_with(prefix), "{error}");
        }
        assert_eq!(
            ParseError::invalid("", "x").to_string(),
            format!("{INVALID_VALUE}{ROOT_LABEL}: x")
        );
    }

    #[test]
    fn a_payload_that_is_not_json_points_at_its_line_and_column() {
        assert_eq!(decoded(b"{truncated"), text(1, 2));
        assert_eq!(decoded(b"{\"a\": 1,\n \"b\": }"), text(2, 7));
        // The column counts characters, not bytes; the byte-order mark is one of them.
        assert_eq!(decoded("{\"é\": x}".as_bytes()), text(1, 7));
        assert_eq!(decoded("\u{feff}{\"a\": x}".as_bytes()), text(1, 8));
        // At the end of the text: the last character, or the start of an empty last line.
        assert_eq!(decoded(b"{\"a\": 1"), text(1, 7));
        assert_eq!(decoded(b"{\"a\": 1\n"), text(2, 1));
    }

    #[test]
    fn too_deep_points_at_the_bracket_over_the_limit() {
        let payload = format!("\n{}", "[".repeat(MAX_DEPTH + 1));
        assert_eq!(decoded(payload.as_bytes()), text(2, MAX_DEPTH + 1));
    }

    #[test]
    fn schema_and_value_errors_point_at_the_value() {
        let payload = br#"{"sensors": [{"name": "t", "value": "warm"}], "a: b": 1}"#;
        let schema = ParseError::Schema(vec![
            "/sensors/0/value: \"warm\" is not of type \"number\"".into(),
            "/ts: missing".into(),
        ]);
        assert_eq!(
            error_position(&schema.to_string(), payload),
            value("/sensors/0/value")
        );
        let root = ParseError::Schema(vec!["(root): \"x\" is a required property".into()]);
        assert_eq!(error_position(&root.to_string(), payload), value(""));
        let key_with_colon = ParseError::invalid("/a: b", "not a string: 1");
        assert_eq!(
            error_position(&key_with_colon.to_string(), payload),
            value("/a: b")
        );
        // A value the rule asked for and the payload lacks is still named.
        let missing = ParseError::invalid("/sensors/1/name", "missing");
        assert_eq!(
            error_position(&missing.to_string(), payload),
            value("/sensors/1/name")
        );
    }

    #[test]
    fn other_errors_point_nowhere() {
        assert_eq!(decoded(&[0xff, 0xfe]), None);
        assert_eq!(decoded(b""), None);
        for error in [
            ParseError::MissingIdentifier("gateway"),
            ParseError::TooLarge { size: 9, limit: 1 },
        ] {
            assert_eq!(error_position(&error.to_string(), b"{}"), None);
        }
        assert_eq!(error_position("payload is not valid JSON: x", b"{}"), None);
    }
}
