//! A command as an operator asks for it, checked before anything is stored: a publishable
//! topic, QoS 0 to 2, a payload within the limit, an expiry within a week, an idempotency key
//! that fits a header. Every refusal names the field.

use std::time::Duration;

use serde_json::Value;

use crate::parsers::{CommandTemplate, ConfirmRule};
use crate::routing::publish_topic_problem;

/// Five minutes: a command that old is usually no longer wanted.
pub const DEFAULT_EXPIRES_IN_SECS: i64 = 300;
/// A week.
pub const MAX_EXPIRES_IN_SECS: i64 = 604_800;
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// A command ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCommand {
    pub site_id: i32,
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub expires_in: Duration,
    pub template: Option<String>,
    /// The device reply that confirms it (commands made from a template that declares one).
    pub confirm: Option<ConfirmRule>,
    pub idempotency_key: Option<String>,
}

/// Which field is wrong and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidCommand {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidCommand {
    InvalidCommand {
        field: field.into(),
        message: message.into(),
    }
}

/// What is published: a JSON string as its text, any other JSON value as its JSON text.
pub fn encode_payload(payload: &Value) -> Vec<u8> {
    match payload {
        Value::String(text) => text.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

impl NewCommand {
    /// A command to `topic` with the given (optional) settings; defaults: QoS 1, not retained,
    /// expiring in 300 s.
    pub fn direct(
        site_id: i32,
        topic: &str,
        payload: &Value,
        qos: Option<i64>,
        retain: Option<bool>,
        expires_in_secs: Option<i64>,
        max_payload_bytes: usize,
    ) -> Result<NewCommand, InvalidCommand> {
        let qos = match qos.unwrap_or(1) {
            level @ 0..=2 => level as u8,
            other => return Err(invalid("qos", format!("must be 0, 1 or 2 (got {other})"))),
        };
        NewCommand::checked(
            site_id,
            topic,
            encode_payload(payload),
            qos,
            retain.unwrap_or(false),
            expires_in_secs,
            max_payload_bytes,
        )
    }

    /// A command made from a parser's template: `args` checked against its schema and filled
    /// into its topic, payload and confirm rule.
    pub fn from_template(
        site_id: i32,
        template: &CommandTemplate,
        args: &Value,
        expires_in_secs: Option<i64>,
        max_payload_bytes: usize,
    ) -> Result<NewCommand, InvalidCommand> {
        let rendered = template
            .render(args)
            .map_err(|error| invalid(error.field, error.message))?;
        let mut command = NewCommand::checked(
            site_id,
            &rendered.topic,
            encode_payload(&rendered.payload),
            rendered.qos,
            rendered.retain,
            expires_in_secs,
            max_payload_bytes,
        )
        .map_err(|mut error| {
            // The operator gave arguments, not a topic: say which template made it.
            error.message = format!("{} (made by template {})", error.message, template.name);
            error.field = "args".to_owned();
            error
        })?;
        command.template = Some(template.name.clone());
        command.confirm = rendered.confirm;
        Ok(command)
    }

    fn checked(
        site_id: i32,
        topic: &str,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
        expires_in_secs: Option<i64>,
        max_payload_bytes: usize,
    ) -> Result<NewCommand, InvalidCommand> {
        if let Some(problem) = publish_topic_problem(topic) {
            return Err(invalid("topic", problem));
        }
        if payload.len() > max_payload_bytes {
            return Err(invalid(
                "payload",
                format!(
                    "is {} bytes; at most {max_payload_bytes} are allowed (pipeline.max_payload_bytes)",
                    payload.len()
                ),
            ));
        }
        let expires_in_secs = expires_in_secs.unwrap_or(DEFAULT_EXPIRES_IN_SECS);
        if !(1..=MAX_EXPIRES_IN_SECS).contains(&expires_in_secs) {
            return Err(invalid(
                "expires_in_secs",
                format!("must be between 1 and {MAX_EXPIRES_IN_SECS} (got {expires_in_secs})"),
            ));
        }
        Ok(NewCommand {
            site_id,
            topic: topic.to_owned(),
            payload,
            qos,
            retain,
            expires_in: Duration::from_secs(expires_in_secs as u64),
            template: None,
            confirm: None,
            idempotency_key: None,
        })
    }
}

/// An `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<String, InvalidCommand> {
    let well_formed = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_CHARS
        && key.bytes().all(|byte| byte.is_ascii_graphic());
    if well_formed {
        Ok(key.to_owned())
    } else {
        Err(invalid(
            "Idempotency-Key",
            format!(
                "must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters, such as a UUID"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn direct(
        topic: &str,
        qos: Option<i64>,
        expires: Option<i64>,
    ) -> Result<NewCommand, InvalidCommand> {
        NewCommand::direct(1, topic, &json!({"state": "on"}), qos, None, expires, 64)
    }

    #[test]
    fn defaults_are_qos_one_not_retained_and_five_minutes() {
        let command = direct("relays/1/set", None, None).unwrap();
        assert_eq!(command.qos, 1);
        assert!(!command.retain);
        assert_eq!(command.expires_in, Duration::from_secs(300));
        assert_eq!(command.payload, br#"{"state":"on"}"#.to_vec());
    }

    #[test]
    fn a_string_payload_is_sent_as_it_is() {
        assert_eq!(encode_payload(&json!("ON")), b"ON".to_vec());
        assert_eq!(encode_payload(&json!(42)), b"42".to_vec());
    }

    #[test]
    fn each_bad_field_is_named() {
        for (topic, qos, expires, field) in [
            ("relays/+/set", None, None, "topic"),
            ("relays/#", None, None, "topic"),
            ("", None, None, "topic"),
            ("$SYS/x", None, None, "topic"),
            ("relays/1", Some(3), None, "qos"),
            ("relays/1", Some(-1), None, "qos"),
            ("relays/1", None, Some(0), "expires_in_secs"),
            (
                "relays/1",
                None,
                Some(MAX_EXPIRES_IN_SECS + 1),
                "expires_in_secs",
            ),
        ] {
            assert_eq!(
                direct(topic, qos, expires).unwrap_err().field,
                field,
                "{topic}"
            );
        }
        let large = NewCommand::direct(1, "a", &json!("x".repeat(65)), None, None, None, 64);
        assert_eq!(large.unwrap_err().field, "payload");
    }

    #[test]
    fn idempotency_keys_are_short_visible_text() {
        assert_eq!(check_idempotency_key("a1-b2").unwrap(), "a1-b2");
        for key in ["", "with space", &"k".repeat(256), "é"] {
            assert_eq!(
                check_idempotency_key(key).unwrap_err().field,
                "Idempotency-Key"
            );
        }
    }
}
