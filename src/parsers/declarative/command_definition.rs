//! The `commands` section of a parser definition as serde types, and the checks between its parts:
//! every `{placeholder}` of a topic, payload, confirm rule or switch must be a required argument,
//! so a command whose arguments pass their schema always renders.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::checks::name_template_parts;
use super::definition::{JsonPointer, NamePart, NonEmptyText, ParserName, PayloadSchema};
use crate::parsers::command_template::{
    CommandTemplate, ConfirmTemplate, SwitchTemplate, TextTemplate, DEFAULT_CONFIRM_WITHIN_SECS,
};
use crate::parsers::compile_schema;

/// One command template as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandDefinition {
    #[serde(rename = "$comment", default)]
    _comment: Option<IgnoredAny>,
    #[serde(default)]
    pub description: Option<String>,
    pub topic: NonEmptyText,
    pub args: PayloadSchema,
    pub payload: Value,
    #[serde(default)]
    pub qos: Option<u8>,
    #[serde(default)]
    pub retain: bool,
    #[serde(default)]
    pub confirm: Option<ConfirmDefinition>,
    #[serde(default)]
    pub switch: Option<SwitchDefinition>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmDefinition {
    #[serde(rename = "$comment", default)]
    _comment: Option<IgnoredAny>,
    pub topic: NonEmptyText,
    pub fields: BTreeMap<JsonPointer, Value>,
    #[serde(default)]
    pub within_secs: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwitchDefinition {
    #[serde(rename = "$comment", default)]
    _comment: Option<IgnoredAny>,
    pub sensor: NonEmptyText,
    pub arg: NonEmptyText,
    pub on: Value,
    pub off: Value,
}

/// The arguments a template's schema requires.
fn required_arguments(schema: &Value) -> BTreeSet<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn text_template(text: &str) -> Result<TextTemplate, String> {
    let parts = name_template_parts(text)?
        .into_iter()
        .map(|part| match part {
            NamePart::Literal(text) => (text, false),
            NamePart::Capture(name) => (name, true),
        })
        .collect();
    Ok(TextTemplate::new(text, parts))
}

/// Placeholders of every string inside a JSON value.
fn value_placeholders(value: &Value, found: &mut Vec<String>) -> Result<(), String> {
    match value {
        Value::String(text) if text.contains(['{', '}']) => {
            found.extend(text_template(text)?.placeholders().map(str::to_owned));
        }
        Value::Array(items) => {
            for item in items {
                value_placeholders(item, found)?;
            }
        }
        Value::Object(fields) => {
            for item in fields.values() {
                value_placeholders(item, found)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Builds the templates of one definition; every problem is returned with the JSON pointer of
/// its place.
pub(crate) fn compile_commands(
    parser: &ParserName,
    commands: &BTreeMap<ParserName, CommandDefinition>,
) -> Result<Vec<CommandTemplate>, Vec<String>> {
    let mut templates = Vec::new();
    let mut problems = Vec::new();
    for (name, definition) in commands {
        let at = format!("/commands/{}", name.0);
        match compile_command(parser, name, definition, &at) {
            Ok(template) => templates.push(template),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if problems.is_empty() {
        Ok(templates)
    } else {
        Err(problems)
    }
}

fn compile_command(
    parser: &ParserName,
    name: &ParserName,
    definition: &CommandDefinition,
    at: &str,
) -> Result<CommandTemplate, Vec<String>> {
    let mut problems = Vec::new();
    // (place, placeholders used there), checked against the required arguments at the end.
    let mut used: Vec<(&str, Vec<String>)> = Vec::new();
    let topic = match text_template(&definition.topic.0) {
        Ok(topic) if definition.topic.0.contains(['+', '#']) => {
            problems.push(format!(
                "{at}/topic: a command is published to one topic; \"+\" and \"#\" are for \
                 subscriptions"
            ));
            Some(topic)
        }
        Ok(topic) => Some(topic),
        Err(problem) => {
            problems.push(format!("{at}/topic: {problem}"));
            None
        }
    };
    if let Some(topic) = &topic {
        used.push(("/topic", topic.placeholders().map(str::to_owned).collect()));
    }
    let mut payload_placeholders = Vec::new();
    if let Err(problem) = value_placeholders(&definition.payload, &mut payload_placeholders) {
        problems.push(format!("{at}/payload: {problem}"));
    }
    used.push(("/payload", payload_placeholders));
    if let Some(qos) = definition.qos.filter(|qos| *qos > 2) {
        problems.push(format!("{at}/qos: must be 0, 1 or 2 (got {qos})"));
    }
    let confirm = match &definition.confirm {
        None => None,
        Some(confirm) => match text_template(&confirm.topic.0) {
            Ok(topic) => {
                used.push((
                    "/confirm/topic",
                    topic.placeholders().map(str::to_owned).collect(),
                ));
                let mut field_placeholders = Vec::new();
                for value in confirm.fields.values() {
                    if let Err(problem) = value_placeholders(value, &mut field_placeholders) {
                        problems.push(format!("{at}/confirm/fields: {problem}"));
                    }
                }
                used.push(("/confirm/fields", field_placeholders));
                Some(ConfirmTemplate {
                    topic,
                    fields: confirm
                        .fields
                        .iter()
                        .map(|(pointer, value)| (pointer.0.clone(), value.clone()))
                        .collect(),
                    within_secs: confirm
                        .within_secs
                        .map_or(DEFAULT_CONFIRM_WITHIN_SECS, i64::from),
                })
            }
            Err(problem) => {
                problems.push(format!("{at}/confirm/topic: {problem}"));
                None
            }
        },
    };
    let switch = match &definition.switch {
        None => None,
        Some(switch) => match text_template(&switch.sensor.0) {
            Ok(sensor) => {
                used.push(("/switch/arg", vec![switch.arg.0.clone()]));
                Some(SwitchTemplate {
                    sensor,
                    argument: switch.arg.0.clone(),
                    on: switch.on.clone(),
                    off: switch.off.clone(),
                })
            }
            Err(problem) => {
                problems.push(format!("{at}/switch/sensor: {problem}"));
                None
            }
        },
    };
    let required = required_arguments(&definition.args.0);
    for (place, placeholders) in used {
        for placeholder in placeholders {
            if !required.contains(&placeholder) {
                problems.push(format!(
                    "{at}{place}: {{{placeholder}}} is not a required argument; add \
                     \"{placeholder}\" to the \"required\" list of {at}/args"
                ));
            }
        }
    }
    let validator = match compile_schema(&definition.args.0) {
        Ok(validator) => Some(validator),
        Err(message) => {
            problems.push(format!("{at}/args: {message}"));
            None
        }
    };
    match (topic, validator) {
        (Some(topic), Some(validator)) if problems.is_empty() => Ok(CommandTemplate {
            name: name.0.clone(),
            parser: parser.0.clone(),
            description: definition.description.clone().unwrap_or_default(),
            args_schema: definition.args.0.clone(),
            validator,
            topic,
            payload: definition.payload.clone(),
            qos: definition.qos.unwrap_or(1),
            retain: definition.retain,
            confirm,
            switch,
        }),
        _ => {
            problems.dedup();
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_definitions::{assert_problem, parser, relay_definition};
    use serde_json::{json, Value};

    fn with_command(command: Value) -> Value {
        let mut definition = relay_definition();
        definition["commands"] = json!({ "set_relay": command });
        definition
    }

    fn set_relay() -> Value {
        json!({
            "topic": "relayctl/{gateway}/relay/{channel}/set",
            "args": {
                "type": "object",
                "required": ["gateway", "channel", "state"],
                "properties": {"state": {"enum": ["on", "off"]}}
            },
            "payload": {"state": "{state}"},
            "confirm": {"topic": "relayctl/{gateway}/relay/{channel}",
                        "fields": {"/state": "{state}"}},
            "switch": {"sensor": "relay_{channel}", "arg": "state", "on": "on", "off": "off"}
        })
    }

    #[test]
    fn a_template_is_loaded_with_its_defaults() {
        use crate::parsers::Parser;
        let parser = parser(&with_command(set_relay()));
        let [template] = parser.commands() else {
            panic!("one template");
        };
        assert_eq!(template.name, "set_relay");
        assert_eq!(template.parser, "relay_test_v1");
        assert_eq!(template.qos, 1);
        assert!(!template.retain);
        let confirm = template.confirm.as_ref().expect("a confirm rule");
        assert_eq!(confirm.within_secs, 30);
        let rendered = template
            .render(&json!({"gateway": "g", "channel": 2, "state": "off"}))
            .unwrap();
        assert_eq!(rendered.topic, "relayctl/g/relay/2/set");
        assert_eq!(rendered.payload, json!({"state": "off"}));
        let info = template.info();
        assert_eq!(info.switch.expect("a switch").sensor, "relay_{channel}");
        assert!(info.confirmed_by_reply);
    }

    #[test]
    fn every_placeholder_must_be_a_required_argument() {
        let mut command = set_relay();
        command["args"]["required"] = json!(["gateway", "state"]);
        assert_problem(
            &with_command(command.clone()),
            "/commands/set_relay/topic: {channel} is not a required argument",
        );
        assert_problem(
            &with_command(command),
            "/commands/set_relay/confirm/topic: {channel} is not a required argument",
        );
        let mut command = set_relay();
        command["payload"] = json!({"level": "{level}"});
        assert_problem(
            &with_command(command),
            "/commands/set_relay/payload: {level} is not a required argument",
        );
        let mut command = set_relay();
        command["switch"]["arg"] = json!("mode");
        assert_problem(&with_command(command), "/commands/set_relay/switch/arg");
    }

    #[test]
    fn wildcards_bad_levels_and_bad_schemas_are_refused() {
        let mut command = set_relay();
        command["topic"] = json!("relayctl/+/relay/{channel}/set");
        assert_problem(
            &with_command(command),
            "\"+\" and \"#\" are for subscriptions",
        );
        let mut command = set_relay();
        command["qos"] = json!(3);
        assert_problem(&with_command(command), "/commands/set_relay/qos");
        let mut command = set_relay();
        command["args"]["type"] = json!(12);
        assert_problem(&with_command(command), "/commands/set_relay/args");
        let mut command = set_relay();
        command["topic"] = json!("relayctl/{gateway/set");
        assert_problem(&with_command(command), "/commands/set_relay/topic");
    }
}
