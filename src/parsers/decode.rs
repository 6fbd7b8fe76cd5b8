//! From raw MQTT payload bytes to JSON: size limit, UTF-8, nesting depth, then the JSON parser.

use serde_json::Value;

use super::errors::ParseError;
use super::json_pointer::escape_pointer_token;

/// Deepest array/object nesting a payload may have. Device payloads are flat or nearly so; the
/// limit keeps validation and the recursive walks below far away from any stack limit.
pub const MAX_DEPTH: usize = 64;

/// Turns raw MQTT payload bytes into JSON: size limit, then UTF-8, then JSON (with a nesting
/// limit and a check that every number is a finite 64-bit float).
pub fn decode_payload(bytes: &[u8], max_bytes: usize) -> Result<Value, ParseError> {
    if bytes.len() > max_bytes {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    // Some device SDKs write a byte-order mark; it carries no meaning and serde_json refuses it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_matches([' ', '\t', '\r', '\n']).is_empty() {
        return Err(ParseError::Empty);
    }
    // Checked on the raw text so that a hostile payload is refused before any recursive parser
    // sees it.
    check_depth(text.as_bytes(), MAX_DEPTH)?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| ParseError::InvalidJson(e.to_string()))?;
    // serde_json already refuses numbers such as 1e400, unless some crate in the build turns on
    // its arbitrary-precision mode; this keeps the promise either way.
    if let Some(pointer) = first_non_finite(&value) {
        return Err(ParseError::invalid(
            pointer,
            "number does not fit a 64-bit float",
        ));
    }
    Ok(value)
}

pub(super) fn check_depth(bytes: &[u8], limit: usize) -> Result<(), ParseError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &byte) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(ParseError::TooDeep { limit, offset });
                }
            }
            // Unbalanced brackets are the JSON parser's business; only keep the count sane.
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Recursion is safe here: the depth was bounded before parsing.
fn first_non_finite(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => (!n.as_f64().is_some_and(f64::is_finite)).then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| first_non_finite(item).map(|rest| format!("/{i}{rest}"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            first_non_finite(item).map(|rest| format!("/{}{rest}", escape_pointer_token(key)))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_a_plain_object() {
        let value = decode_payload(br#"{"a": 1, "b": [true, null]}"#, 1024).unwrap();
        assert_eq!(value, json!({"a": 1, "b": [true, null]}));
    }

    #[test]
    fn size_limit_is_checked_before_anything_else() {
        let bytes = vec![0xffu8; 2048];
        assert_eq!(
            decode_payload(&bytes, 1024),
            Err(ParseError::TooLarge {
                size: 2048,
                limit: 1024
            })
        );
        let exact = format!("[{}]", "1,".repeat(9) + "1");
        assert!(decode_payload(exact.as_bytes(), exact.len()).is_ok());
    }

    #[test]
    fn empty_and_blank_payloads_are_empty() {
        assert_eq!(decode_payload(b"", 1024), Err(ParseError::Empty));
        assert_eq!(decode_payload(b" \r\n\t", 1024), Err(ParseError::Empty));
        assert_eq!(
            decode_payload(b"\xef\xbb\xbf", 1024),
            Err(ParseError::Empty)
        );
    }

    #[test]
    fn binary_is_not_utf8_and_names_the_offset() {
        let err = decode_payload(b"{\"a\":\xff\xfe}", 1024).unwrap_err();
        assert_eq!(err, ParseError::NotUtf8 { offset: 5 });
        assert!(err.to_string().contains("byte offset 5"));
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let value = decode_payload(b"\xef\xbb\xbf{\"a\":1}", 1024).unwrap();
        assert_eq!(value, json!({"a": 1}));
    }

    #[test]
    fn invalid_json_keeps_the_position() {
        let err = decode_payload(b"{\"a\": }", 1024).unwrap_err();
        match &err {
            ParseError::InvalidJson(message) => assert!(message.contains("column"), "{message}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().starts_with("payload is not valid JSON"));
    }

    #[test]
    fn huge_numbers_are_rejected() {
        for text in ["1e400", "{\"v\": -1e400}", "[1, 2, 1E+999]"] {
            let err = decode_payload(text.as_bytes(), 1024).unwrap_err();
            assert!(
                matches!(
                    err,
                    ParseError::InvalidJson(_) | ParseError::InvalidValue { .. }
                ),
                "{text}: {err:?}"
            );
        }
        // Big but finite is fine.
        assert_eq!(decode_payload(b"1e300", 1024).unwrap(), json!(1e300));
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflowing_the_stack() {
        let bytes = vec![b'['; 100_000];
        let err = decode_payload(&bytes, 1 << 20).unwrap_err();
        assert_eq!(
            err,
            ParseError::TooDeep {
                limit: MAX_DEPTH,
                offset: MAX_DEPTH
            }
        );
        let objects = "{\"a\":".repeat(MAX_DEPTH + 1) + "1" + &"}".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            decode_payload(objects.as_bytes(), 1 << 20),
            Err(ParseError::TooDeep { .. })
        ));
    }

    #[test]
    fn nesting_up_to_the_limit_is_fine_and_brackets_in_strings_do_not_count() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(decode_payload(ok.as_bytes(), 1 << 20).is_ok());
        let text = format!("{{\"s\": \"{}\\\"[\"}}", "[".repeat(500));
        assert!(decode_payload(text.as_bytes(), 1 << 20).is_ok());
    }
}
