//! Payload validation against a parser's JSON Schema, with error lists short enough for the
//! parsing log.

use serde_json::Value;

use super::errors::ParseError;
use super::json_pointer::pointer_label;

/// A payload that breaks many rules would otherwise produce an error list as big as itself, and
/// the list ends up in the parsing log.
const MAX_SCHEMA_ERRORS: usize = 20;
const MAX_MESSAGE_CHARS: usize = 200;

/// Format validation is off by default in recent drafts; operators who write `"format":
/// "date-time"` expect it enforced, and the built-ins rely on it for `ts`.
pub(crate) fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| {
            if matches!(
                e.kind(),
                jsonschema::error::ValidationErrorKind::Referencing(_)
            ) {
                // Network lookups are deliberately not built in: a parser must not depend on
                // another server being up when the service starts.
                format!(
                    "{e}; only references inside the schema (\"$defs\") and absolute file:// \
                     references can be resolved"
                )
            } else {
                match e.instance_path().as_str() {
                    "" => e.to_string(),
                    at => format!("at {at} in the schema: {e}"),
                }
            }
        })
}

pub(crate) fn validate_payload(
    validator: &jsonschema::Validator,
    payload: &Value,
) -> Result<(), ParseError> {
    // Valid payloads are the common case, and this check builds no error messages.
    if validator.is_valid(payload) {
        return Ok(());
    }
    let mut messages = Vec::new();
    let mut total = 0usize;
    for error in validator.iter_errors(payload) {
        total += 1;
        if messages.len() < MAX_SCHEMA_ERRORS {
            let path = pointer_label(error.instance_path().as_str()).to_owned();
            messages.push(format!("{path}: {}", describe_violation(&error)));
        }
    }
    if total > messages.len() {
        messages.push(format!("and {} more errors", total - messages.len()));
    }
    if messages.is_empty() {
        messages.push("(root): rejected by the schema".to_owned());
    }
    Err(ParseError::Schema(messages))
}

/// jsonschema quotes the offending value, which may be an entire object; past a few lines the
/// value is replaced by the word "value" so that the rule it broke stays readable.
fn describe_violation(error: &jsonschema::ValidationError<'_>) -> String {
    let full = error.to_string();
    if full.chars().count() <= MAX_MESSAGE_CHARS {
        full
    } else {
        truncate(&error.masked().to_string())
    }
}

/// Keeps quoted values in messages to a readable length.
pub(crate) fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_errors_are_capped() {
        let validator =
            compile_schema(&json!({"type": "array", "items": {"type": "string"}})).unwrap();
        let payload = Value::Array((0..100).map(|i| json!(i)).collect());
        let err = validate_payload(&validator, &payload).unwrap_err();
        match err {
            ParseError::Schema(messages) => {
                assert_eq!(messages.len(), MAX_SCHEMA_ERRORS + 1);
                assert_eq!(messages[0], "/0: 0 is not of type \"string\"");
                assert_eq!(messages[MAX_SCHEMA_ERRORS], "and 80 more errors");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
