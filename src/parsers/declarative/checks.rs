//! The checks of a parser definition that serde's derive cannot make: the form of parser names,
//! JSON pointers and sensor-name templates, and the rules between sections. Pure functions that
//! return the operator-facing text of what is wrong.

use serde_json::Value;

use super::definition::{Definition, NamePart};

/// Parser names appear in URLs (`/api/parsers/{name}/test`) and in topic bindings, so they are
/// kept to characters that need no escaping anywhere.
pub(crate) const NAME_MAX_CHARS: usize = 64;

pub(crate) const NOTHING_TO_STORE: &str = "the parser would store nothing; add at least one \
                                           entry to \"sensors\" or a \"gateway_status\"";

/// Why a root key is needed, for the message that says it is missing.
pub(crate) fn missing_key_hint(key: &str) -> Option<&'static str> {
    Some(match key {
        "name" => "every parser needs a unique name",
        "schema" => "give the JSON Schema of the payload (use {} to accept any JSON)",
        "gateway" => {
            "say where the gateway identifier comes from, e.g. {\"capture\": \"gateway\"} or \
             {\"value\": \"default\"}"
        }
        "datalogger" => {
            "sensors belong to a datalogger, so say where its identifier comes from, e.g. \
             {\"capture\": \"datalogger\"}"
        }
        _ => return None,
    })
}

/// The message for a missing root key.
pub(crate) fn missing_key(key: &str) -> String {
    match missing_key_hint(key) {
        Some(hint) => format!("\"{key}\" is missing; {hint}"),
        None => format!("\"{key}\" is missing"),
    }
}

pub(crate) fn check_parser_name(name: &str) -> Result<(), String> {
    let usable = !name.is_empty()
        && name.chars().count() <= NAME_MAX_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if usable {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a usable parser name; use 1 to {NAME_MAX_CHARS} ASCII letters, \
             digits, '_', '-' or '.'"
        ))
    }
}

/// RFC 6901: empty (the whole payload) or `/`-separated tokens where `~` escapes only 0 and 1.
pub(crate) fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "{pointer:?} is not a JSON pointer; pointers start with '/', e.g. \"/{pointer}\" \
             (or are \"\" for the whole payload)"
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "{pointer:?} is not a valid JSON pointer: '~' must be followed by 0 (for '~') or \
                 1 (for '/')"
            ));
        }
    }
    Ok(())
}

/// Splits a sensor name such as `relay_{channel}` into literal text and the topic captures it
/// needs.
pub(crate) fn name_template_parts(text: &str) -> Result<Vec<NamePart>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                parts.push(NamePart::Literal(rest.to_owned()));
                rest = "";
            }
            Some(at) if rest[at..].starts_with('}') => {
                return Err(format!(
                    "{text:?} has a '}}' without a matching '{{'; placeholders look like \
                     {{channel}}"
                ));
            }
            Some(at) => {
                if at > 0 {
                    parts.push(NamePart::Literal(rest[..at].to_owned()));
                }
                let after = &rest[at + 1..];
                let Some(end) = after.find('}') else {
                    return Err(format!("{text:?} has a '{{' that is never closed"));
                };
                let capture = &after[..end];
                if capture.is_empty() || capture.contains('{') {
                    return Err(format!(
                        "{text:?} has an empty or nested placeholder; name a topic capture, \
                         e.g. {{channel}}"
                    ));
                }
                parts.push(NamePart::Capture(capture.to_owned()));
                rest = &after[end + 1..];
            }
        }
    }
    if text.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(parts)
}

/// `1` and `1.0` are the same status code.
pub(crate) fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Values listed as both online and offline, which would make a state mean two things.
pub(crate) fn online_and_offline<'a>(online: &'a [Value], offline: &[Value]) -> Vec<&'a Value> {
    online
        .iter()
        .filter(|value| offline.iter().any(|other| same_scalar(value, other)))
        .collect()
}

/// The rules between sections of a definition that has the right form; each entry is one
/// problem, prefixed with the JSON pointer it is about where there is one.
pub(crate) fn definition_problems(definition: &Definition) -> Vec<String> {
    let mut problems = Vec::new();
    if definition.sensors.is_empty() && definition.gateway_status.is_none() {
        problems.push(NOTHING_TO_STORE.to_owned());
    }
    if !definition.sensors.is_empty() && definition.datalogger.is_none() {
        problems.push(missing_key("datalogger"));
    }
    if let Some(status) = &definition.gateway_status {
        if let Some(offline) = &status.offline {
            for value in online_and_offline(&status.online, offline) {
                problems.push(format!(
                    "/gateway_status: {value} is listed as both online and offline"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::super::definition::read;
    use super::super::test_definitions::relay_definition;
    use super::*;
    use serde_json::json;

    #[test]
    fn parser_names() {
        for good in [
            "relay_controller_v1",
            "a",
            "x.y-z",
            &"n".repeat(NAME_MAX_CHARS),
        ] {
            assert_eq!(check_parser_name(good), Ok(()), "{good}");
        }
        for bad in ["", "bad name!", "ü", "a/b", &"n".repeat(NAME_MAX_CHARS + 1)] {
            let message = check_parser_name(bad).unwrap_err();
            assert!(message.contains("is not a usable parser name"), "{message}");
        }
    }

    #[test]
    fn pointers_are_checked() {
        assert!(check_pointer("").is_ok());
        assert!(check_pointer("/a/0/b~0~1").is_ok());
        assert!(check_pointer("/").is_ok());
        let message = check_pointer("temp").unwrap_err();
        assert!(message.contains("\"/temp\""), "{message}");
        assert!(check_pointer("/a~2").is_err());
        assert!(check_pointer("/a~").is_err());
    }

    #[test]
    fn name_templates() {
        let parts = name_template_parts("relay_{channel}_{kind}").unwrap();
        assert_eq!(
            parts,
            vec![
                NamePart::Literal("relay_".into()),
                NamePart::Capture("channel".into()),
                NamePart::Literal("_".into()),
                NamePart::Capture("kind".into()),
            ]
        );
        assert_eq!(
            name_template_parts("{metric}").unwrap(),
            vec![NamePart::Capture("metric".into())]
        );
        for (bad, needle) in [
            ("relay_{channel", "never closed"),
            ("relay}", "without a matching"),
            ("x{}", "empty or nested"),
            ("a{b{c}}", "empty or nested"),
            ("   ", "must not be empty"),
            ("", "must not be empty"),
        ] {
            let message = name_template_parts(bad).unwrap_err();
            assert!(message.contains(needle), "{bad:?}: {message}");
        }
    }

    #[test]
    fn status_values_in_both_lists_are_found_whatever_their_number_form() {
        let online = [json!("up"), json!(1), json!(true)];
        let offline = [json!("down"), json!(1.0), json!("up")];
        assert_eq!(
            online_and_offline(&online, &offline),
            vec![&json!("up"), &json!(1)]
        );
        assert!(online_and_offline(&online, &[json!(false), json!("1")]).is_empty());
    }

    #[test]
    fn missing_keys_say_why_they_are_needed() {
        assert_eq!(
            missing_key("name"),
            "\"name\" is missing; every parser needs a unique name"
        );
        assert_eq!(missing_key("other"), "\"other\" is missing");
    }

    #[test]
    fn rules_between_sections() {
        let relay = relay_definition();
        assert!(definition_problems(&read(&relay).unwrap()).is_empty());

        let mut no_datalogger = relay.clone();
        no_datalogger.as_object_mut().unwrap().remove("datalogger");
        assert_eq!(
            definition_problems(&read(&no_datalogger).unwrap()),
            vec![missing_key("datalogger")]
        );

        let mut nothing = relay.clone();
        nothing["sensors"] = json!([]);
        nothing.as_object_mut().unwrap().remove("gateway_status");
        assert_eq!(
            definition_problems(&read(&nothing).unwrap()),
            vec![NOTHING_TO_STORE.to_owned()]
        );

        let mut both = relay;
        both["gateway_status"]["offline"] = json!(["up", "down", "online"]);
        assert_eq!(
            definition_problems(&read(&both).unwrap()),
            vec![
                "/gateway_status: \"online\" is listed as both online and offline".to_owned(),
                "/gateway_status: \"up\" is listed as both online and offline".to_owned(),
            ]
        );
    }
}
