//! Command templates a parser declares for its devices: filled from an operator's arguments into
//! the topic, payload and confirm rule of one command. Pure; the outbox stores what they render.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json_pointer::pointer_label;

/// How long a device has to confirm a command when its template does not say.
pub const DEFAULT_CONFIRM_WITHIN_SECS: i64 = 30;

/// Text with `{argument}` placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTemplate {
    text: String,
    /// (literal text, false) or (argument name, true), in order.
    parts: Vec<(String, bool)>,
}

impl TextTemplate {
    pub(crate) fn new(text: &str, parts: Vec<(String, bool)>) -> TextTemplate {
        TextTemplate {
            text: text.to_owned(),
            parts,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts
            .iter()
            .filter(|(_, placeholder)| *placeholder)
            .map(|(name, _)| name.as_str())
    }

    /// `in_topic`: the values become topic levels, so they may not hold `/`, `+` or `#`.
    fn render(
        &self,
        args: &serde_json::Map<String, Value>,
        in_topic: bool,
    ) -> Result<String, ArgumentError> {
        let mut rendered = String::with_capacity(self.text.len());
        for (part, placeholder) in &self.parts {
            if !placeholder {
                rendered.push_str(part);
                continue;
            }
            let value = args.get(part).ok_or_else(|| ArgumentError {
                field: format!("args/{part}"),
                message: "is required".to_owned(),
            })?;
            let text = scalar_text(value).ok_or_else(|| ArgumentError {
                field: format!("args/{part}"),
                message: format!(
                    "must be a string, number or boolean to fill {{{part}}} in {:?}",
                    self.text
                ),
            })?;
            if in_topic && (text.is_empty() || text.contains(['/', '+', '#', '\0'])) {
                return Err(ArgumentError {
                    field: format!("args/{part}"),
                    message: format!(
                        "fills one level of the topic {:?}: it must not be empty or hold '/', \
                         '+' or '#' (got {text:?})",
                        self.text
                    ),
                });
            }
            rendered.push_str(&text);
        }
        Ok(rendered)
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Fills the placeholders of every string in a JSON value: a string that is exactly one
/// placeholder takes the argument's value with its type, any other has them filled as text.
fn render_value(
    template: &Value,
    args: &serde_json::Map<String, Value>,
) -> Result<Value, ArgumentError> {
    Ok(match template {
        Value::String(text) if text.contains('{') => {
            let parts = string_parts(text);
            match parts.as_slice() {
                [(name, true)] => args.get(name).cloned().ok_or_else(|| ArgumentError {
                    field: format!("args/{name}"),
                    message: "is required".to_owned(),
                })?,
                _ => Value::String(TextTemplate::new(text, parts).render(args, false)?),
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_value(item, args))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, item)| Ok((key.clone(), render_value(item, args)?)))
                .collect::<Result<_, ArgumentError>>()?,
        ),
        other => other.clone(),
    })
}

/// The parts of a string checked when its definition was loaded; an unclosed brace is text.
fn string_parts(text: &str) -> Vec<(String, bool)> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        if open > 0 {
            parts.push((rest[..open].to_owned(), false));
        }
        parts.push((rest[open + 1..open + close].to_owned(), true));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push((rest.to_owned(), false));
    }
    parts
}

/// The reply that confirms a command, as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfirmTemplate {
    pub topic: TextTemplate,
    /// JSON pointer → value, with placeholders.
    pub fields: BTreeMap<String, Value>,
    pub within_secs: i64,
}

/// How the Devices page shows a command as an on/off switch beside a sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchTemplate {
    /// The sensor name, e.g. `relay_{channel}`.
    pub sensor: TextTemplate,
    /// The argument that carries the state.
    pub argument: String,
    pub on: Value,
    pub off: Value,
}

/// A command template of a parser.
#[derive(Debug)]
pub struct CommandTemplate {
    pub name: String,
    pub parser: String,
    pub description: String,
    pub args_schema: Value,
    pub(crate) validator: jsonschema::Validator,
    pub topic: TextTemplate,
    pub payload: Value,
    pub qos: u8,
    pub retain: bool,
    pub confirm: Option<ConfirmTemplate>,
    pub switch: Option<SwitchTemplate>,
}

/// The rendered reply a command waits for: stored with the command, so a restart keeps waiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmRule {
    pub topic: String,
    /// JSON pointer → the value the reply's payload must hold there.
    pub fields: BTreeMap<String, Value>,
    pub within_secs: i64,
}

impl ConfirmRule {
    /// Whether a message confirms the command: the same topic, and every field equal (numbers
    /// by value, so `1` and `1.0` agree).
    pub fn is_met_by(&self, topic: &str, payload: &Value) -> bool {
        topic == self.topic
            && self
                .fields
                .iter()
                .all(|(pointer, expected)| match payload.pointer(pointer) {
                    Some(Value::Number(found)) => {
                        expected.as_f64().is_some() && found.as_f64() == expected.as_f64()
                    }
                    Some(found) => found == expected,
                    None => false,
                })
    }
}

/// A command filled from its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedCommand {
    pub topic: String,
    pub payload: Value,
    pub qos: u8,
    pub retain: bool,
    pub confirm: Option<ConfirmRule>,
}

/// An argument the template cannot take; `field` is `args` or `args/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ArgumentError {
    pub field: String,
    pub message: String,
}

impl CommandTemplate {
    /// Checks `args` against the template's schema, then fills the topic, payload and confirm
    /// rule.
    pub fn render(&self, args: &Value) -> Result<RenderedCommand, ArgumentError> {
        if let Some(error) = self.validator.iter_errors(args).next() {
            let at = error.instance_path().as_str();
            let field = if at.is_empty() {
                // A missing required property is reported at the object: name it.
                match error.kind() {
                    jsonschema::error::ValidationErrorKind::Required { property } => {
                        format!("args/{}", property.as_str().unwrap_or_default())
                    }
                    _ => "args".to_owned(),
                }
            } else {
                format!("args{at}")
            };
            return Err(ArgumentError {
                field,
                message: format!(
                    "{} (template {} of parser {}; at {})",
                    error.masked(),
                    self.name,
                    self.parser,
                    pointer_label(at)
                ),
            });
        }
        let Value::Object(args) = args else {
            return Err(ArgumentError {
                field: "args".to_owned(),
                message: "must be an object of the template's arguments".to_owned(),
            });
        };
        let confirm = match &self.confirm {
            None => None,
            Some(confirm) => Some(ConfirmRule {
                topic: confirm.topic.render(args, true)?,
                fields: confirm
                    .fields
                    .iter()
                    .map(|(pointer, value)| Ok((pointer.clone(), render_value(value, args)?)))
                    .collect::<Result<_, ArgumentError>>()?,
                within_secs: confirm.within_secs,
            }),
        };
        Ok(RenderedCommand {
            topic: self.topic.render(args, true)?,
            payload: render_value(&self.payload, args)?,
            qos: self.qos,
            retain: self.retain,
            confirm,
        })
    }
}

/// A template as `GET /api/parsers` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandInfo {
    pub name: String,
    pub description: String,
    /// The JSON Schema of `args`.
    pub args: Value,
    pub topic: String,
    /// Whether a device reply confirms it.
    pub confirmed_by_reply: bool,
    /// Shown as an on/off switch beside matching sensors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch: Option<SwitchInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwitchInfo {
    pub sensor: String,
    pub arg: String,
    pub on: Value,
    pub off: Value,
}

impl CommandTemplate {
    pub fn info(&self) -> CommandInfo {
        CommandInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            args: self.args_schema.clone(),
            topic: self.topic.text().to_owned(),
            confirmed_by_reply: self.confirm.is_some(),
            switch: self.switch.as_ref().map(|switch| SwitchInfo {
                sensor: switch.sensor.text().to_owned(),
                arg: switch.argument.clone(),
                on: switch.on.clone(),
                off: switch.off.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn relay() -> CommandTemplate {
        let schema = json!({
            "type": "object",
            "required": ["gateway", "channel", "state"],
            "properties": {
                "gateway": {"type": "string"},
                "channel": {"type": "integer", "minimum": 1},
                "state": {"enum": ["on", "off"]}
            },
            "additionalProperties": false
        });
        CommandTemplate {
            name: "set_relay".into(),
            parser: "relay_controller_v1".into(),
            description: String::new(),
            validator: crate::parsers::compile_schema(&schema).unwrap(),
            args_schema: schema,
            topic: TextTemplate::new(
                "relayctl/{gateway}/relay/{channel}/set",
                string_parts("relayctl/{gateway}/relay/{channel}/set"),
            ),
            payload: json!({"state": "{state}", "by": "operator {gateway}", "n": 1}),
            qos: 1,
            retain: false,
            confirm: Some(ConfirmTemplate {
                topic: TextTemplate::new(
                    "relayctl/{gateway}/relay/{channel}",
                    string_parts("relayctl/{gateway}/relay/{channel}"),
                ),
                fields: BTreeMap::from([("/state".to_owned(), json!("{state}"))]),
                within_secs: 30,
            }),
            switch: None,
        }
    }

    #[test]
    fn arguments_fill_the_topic_payload_and_confirm_rule() {
        let rendered = relay()
            .render(&json!({"gateway": "ctl-1", "channel": 2, "state": "on"}))
            .unwrap();
        assert_eq!(rendered.topic, "relayctl/ctl-1/relay/2/set");
        assert_eq!(
            rendered.payload,
            json!({"state": "on", "by": "operator ctl-1", "n": 1})
        );
        let confirm = rendered.confirm.unwrap();
        assert_eq!(confirm.topic, "relayctl/ctl-1/relay/2");
        assert_eq!(confirm.fields["/state"], json!("on"));
    }

    #[test]
    fn a_placeholder_alone_keeps_the_arguments_type() {
        let args = serde_json::Map::from_iter([("n".to_owned(), json!(5))]);
        assert_eq!(render_value(&json!("{n}"), &args).unwrap(), json!(5));
        assert_eq!(render_value(&json!("n={n}"), &args).unwrap(), json!("n=5"));
        assert_eq!(render_value(&json!(["{n}"]), &args).unwrap(), json!([5]));
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let template = relay();
        for (args, field) in [
            (
                json!({"gateway": "g", "channel": 1, "state": "dim"}),
                "args/state",
            ),
            (
                json!({"gateway": "g", "channel": 0, "state": "on"}),
                "args/channel",
            ),
            (json!({"gateway": "g", "state": "on"}), "args/channel"),
            (
                json!({"gateway": "a/b", "channel": 1, "state": "on"}),
                "args/gateway",
            ),
            (
                json!({"gateway": "+", "channel": 1, "state": "on"}),
                "args/gateway",
            ),
            (
                json!({"gateway": "", "channel": 1, "state": "on"}),
                "args/gateway",
            ),
            (json!([1]), "args"),
        ] {
            let error = template.render(&args).unwrap_err();
            assert_eq!(error.field, field, "{args}: {error}");
        }
    }

    #[test]
    fn a_reply_confirms_on_its_topic_with_every_field() {
        let rule = ConfirmRule {
            topic: "relayctl/ctl-1/relay/2".into(),
            fields: BTreeMap::from([("/state".to_owned(), json!("on"))]),
            within_secs: 30,
        };
        assert!(rule.is_met_by("relayctl/ctl-1/relay/2", &json!({"state": "on", "x": 1})));
        assert!(!rule.is_met_by("relayctl/ctl-1/relay/2", &json!({"state": "off"})));
        assert!(!rule.is_met_by("relayctl/ctl-1/relay/3", &json!({"state": "on"})));
        assert!(!rule.is_met_by("relayctl/ctl-1/relay/2", &json!({})));
        let numeric = ConfirmRule {
            topic: "t".into(),
            fields: BTreeMap::from([("/level".to_owned(), json!(1))]),
            within_secs: 30,
        };
        assert!(numeric.is_met_by("t", &json!({"level": 1.0})));
        assert!(!numeric.is_met_by("t", &json!({"level": "1"})));
    }
}
