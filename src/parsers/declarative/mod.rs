//! Declarative parsers: JSON files in the parsers folder that map a payload and its topic
//! captures to gateway and datalogger records, for device formats that need no Rust code.
//! The file format is documented in `docs/parsers.md`; its parts: `definition` (the format as
//! serde types), `definition_schema` (the format's JSON Schema, which reports every problem of
//! form), `checks` (what the types cannot say), `mapping` (running a parser), `files`.

mod checks;
mod command_definition;
mod definition;
mod definition_schema;
mod files;
mod mapping;

#[cfg(test)]
mod test_definitions;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::{
    compile_schema, validate_payload, CommandTemplate, LoadError, ParseError, ParseInput,
    ParseOutput, Parser,
};
use mapping::Mapping;

pub(crate) use files::definition_files;

/// A parser defined by a JSON file.
pub struct DeclarativeParser {
    name: String,
    description: String,
    schema: Value,
    validator: jsonschema::Validator,
    file: PathBuf,
    mapping: Mapping,
    commands: Vec<Arc<CommandTemplate>>,
}

impl DeclarativeParser {
    /// Reads and checks one definition file; every problem found in it is returned.
    pub fn from_file(file: &Path) -> Result<DeclarativeParser, Vec<LoadError>> {
        let bytes = std::fs::read(file).map_err(|source| {
            vec![LoadError::Read {
                file: file.to_path_buf(),
                source,
            }]
        })?;
        let definition: Value = serde_json::from_slice(&bytes).map_err(|e| {
            vec![LoadError::Json {
                file: file.to_path_buf(),
                message: e.to_string(),
            }]
        })?;
        DeclarativeParser::from_value(&definition, file)
    }

    /// Checks an already parsed definition; `file` is only used to name the source in errors.
    ///
    /// First the format's schema, which finds every problem of form at once; then the typed
    /// reading, which can only fail if the schema and the types part ways; then the rules
    /// between sections and the payload schema, which need a definition of the right form.
    pub fn from_value(
        definition: &Value,
        file: &Path,
    ) -> Result<DeclarativeParser, Vec<LoadError>> {
        let invalid = |problem: String| LoadError::Invalid {
            file: file.to_path_buf(),
            problem,
        };
        let form = definition_schema::problems(definition);
        if !form.is_empty() {
            return Err(form.into_iter().map(invalid).collect());
        }
        let definition = definition::read(definition).map_err(|problem| vec![invalid(problem)])?;
        let mut errors: Vec<LoadError> = checks::definition_problems(&definition)
            .into_iter()
            .map(invalid)
            .collect();
        let commands =
            match command_definition::compile_commands(&definition.name, &definition.commands) {
                Ok(commands) => commands.into_iter().map(Arc::new).collect(),
                Err(problems) => {
                    errors.extend(problems.into_iter().map(invalid));
                    Vec::new()
                }
            };
        let validator = match compile_schema(&definition.schema.0) {
            Ok(validator) if errors.is_empty() => validator,
            Ok(_) => return Err(errors),
            Err(message) => {
                errors.push(LoadError::Schema {
                    file: file.to_path_buf(),
                    message,
                });
                return Err(errors);
            }
        };
        let description = definition
            .description
            .clone()
            .unwrap_or_else(|| format!("Declarative parser from {}", file_label(file)));
        Ok(DeclarativeParser {
            name: definition.name.0.clone(),
            description,
            schema: definition.schema.0.clone(),
            validator,
            file: file.to_path_buf(),
            mapping: Mapping::new(definition),
            commands,
        })
    }

    /// The file this parser was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

/// The format's JSON Schema (`parsers/parser-definition.schema.json`), as built into the binary.
pub fn definition_schema() -> &'static Value {
    definition_schema::schema()
}

/// The copy of the format's schema kept in `dir` for editors, when it says something else than
/// the one this build reads (or cannot be read as JSON): editors would then check definitions
/// against another format. `None` when the folder has no copy or an equal one.
pub fn outdated_schema_copy(dir: &Path) -> Option<PathBuf> {
    let copy = dir.join(definition_schema::FILE_NAME);
    let text = match std::fs::read(&copy) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(_) => return Some(copy),
    };
    match serde_json::from_slice::<Value>(&text) {
        Ok(schema) if &schema == definition_schema::schema() => None,
        _ => Some(copy),
    }
}

impl Parser for DeclarativeParser {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn schema(&self) -> &Value {
        &self.schema
    }

    fn kind(&self) -> &'static str {
        "declarative"
    }

    fn parse(&self, input: &ParseInput<'_>) -> Result<ParseOutput, ParseError> {
        validate_payload(&self.validator, input.payload)?;
        self.mapping.apply(input)
    }

    fn commands(&self) -> &[Arc<CommandTemplate>] {
        &self.commands
    }
}

fn file_label(file: &Path) -> String {
    file.file_name().map_or_else(
        || file.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{received_at, run};
    use super::super::Registry;
    use super::test_definitions::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_is_enforced_before_mapping() {
        let parser = parser(&relay_definition());
        match run(
            &parser,
            "t",
            &[("gateway", "g")],
            &json!({"temperature": "hot"}),
        ) {
            Err(ParseError::Schema(messages)) => {
                assert!(messages[0].starts_with("/temperature: "), "{messages:?}")
            }
            other => panic!("unexpected {other:?}"),
        }
        match run(&parser, "t", &[("gateway", "g")], &json!([1])) {
            Err(ParseError::Schema(messages)) => assert!(messages[0].starts_with("(root): ")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bad_definitions_report_every_problem_of_form_at_once() {
        let definition = json!({
            "name": "bad name!",
            "schema": {"type": "object"},
            "gateway": {"capture": "gateway", "value": "x"},
            "timestamp": {"pointer": "time", "format": "epoch"},
            "sensors": [
                {"value": "temp"},
                {"name": "t", "name_from_capture": "c", "value": "/t"},
                {"name": "u", "value": "/u", "map": {"on": "1"}, "unit": 5},
                "temperature",
                {"name": "relay_{channel", "value": "/r", "$comment": "broken placeholder"}
            ],
            "gateway_status": {"pointer": "/s", "online": [], "metadata": {"": "/x", "ip": "ip"}},
            "sensor": []
        });
        let found = problems(&definition);
        for needle in [
            "/name: \"bad name!\" is not a usable parser name",
            "/gateway: has capture and value at once",
            "/timestamp/pointer: \"time\" is not a JSON pointer",
            "/timestamp/format: \"epoch\" is not a timestamp format",
            "/sensors/0: needs a \"name\"",
            "/sensors/0/value: \"temp\" is not a JSON pointer",
            "/sensors/1: has both name and name_from_capture",
            "/sensors/2/map/on: must be a number",
            "/sensors/2/unit: must be a string",
            "/sensors/3: must be an object",
            "/sensors/4/name: \"relay_{channel\" has a '{' that is never closed",
            "\"datalogger\" is missing",
            "/gateway_status/online: must be a non-empty list",
            "/gateway_status/metadata: keys must not be empty",
            "/gateway_status/metadata/ip: \"ip\" is not a JSON pointer",
            "/sensor: unknown key; expected one of: commands, datalogger, description, gateway",
        ] {
            assert!(
                found
                    .iter()
                    .any(|p| p.starts_with("bad.json: ") && p.contains(needle)),
                "missing {needle:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), 16, "{found:#?}");
    }

    #[test]
    fn checks_that_need_a_well_formed_definition_report_every_problem_too() {
        let definition = json!({
            "name": "x",
            "schema": {"type": 12},
            "gateway": {"value": "g"},
            "gateway_status": {"pointer": "/s", "online": ["up", 1], "offline": ["up", 1.0]}
        });
        let found = problems(&definition);
        for needle in [
            "\"schema\" is not a usable JSON Schema",
            "/gateway_status: \"up\" is listed as both online and offline",
            "/gateway_status: 1 is listed as both online and offline",
        ] {
            assert!(
                found
                    .iter()
                    .any(|p| p.starts_with("bad.json: ") && p.contains(needle)),
                "missing {needle:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), 3, "{found:#?}");
    }

    #[test]
    fn a_reference_to_the_format_schema_is_accepted() {
        let mut definition = relay_definition();
        definition["$schema"] = json!("./parser-definition.schema.json");
        parser(&definition);
        definition["$schema"] = json!(7);
        assert_problem(&definition, "/$schema: must be a string, not a number");
    }

    #[test]
    fn definitions_must_declare_output_and_required_keys() {
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway": {"value": "g"}}),
            "would store nothing",
        );
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway": {"value": "g"}, "sensors": []}),
            "would store nothing",
        );
        assert_problem(
            &json!({"schema": {}, "gateway": {"value": "g"}, "gateway_status": {"pointer": "/s"}}),
            "\"name\" is missing",
        );
        assert_problem(
            &json!({"name": "x", "gateway": {"value": "g"}, "gateway_status": {"pointer": "/s"}}),
            "\"schema\" is missing",
        );
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway_status": {"pointer": "/s"}}),
            "\"gateway\" is missing",
        );
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway": [], "gateway_status": {"pointer": "/s"}}),
            "/gateway: must be a source",
        );
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway": {"value": ""}, "gateway_status": {"pointer": "/s"}}),
            "/gateway/value: must not be empty",
        );
        assert_problem(
            &json!({"name": "x", "schema": "object", "gateway": {"value": "g"}, "gateway_status": {"pointer": "/s"}}),
            "/schema: must be a JSON Schema object",
        );
        assert_problem(
            &json!({"name": "x", "schema": {}, "gateway": {"value": "g"}, "gateway_status": {"pointer": "/s", "online": []}}),
            "/gateway_status/online: must be a non-empty list",
        );
        assert_problem(&json!([1]), "must hold one JSON object");
        assert_problem(
            &json!({"name": "", "schema": {}}),
            "/name: \"\" is not a usable parser name",
        );
    }

    #[test]
    fn comments_are_allowed() {
        let mut definition = relay_definition();
        definition["$comment"] = json!("shipped with the relay controller firmware 1.x");
        definition["sensors"][0]["$comment"] = json!("relay coil state");
        definition["gateway"][0]["$comment"] = json!({"any": ["value"]});
        definition["timestamp"]["$comment"] = json!(null);
        definition["gateway_status"]["$comment"] = json!("up or down");
        parser(&definition);
    }

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn folder_loading_collects_errors_from_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = relay_definition().to_string();
        write(dir.path(), "a_relay.json", &good);
        write(dir.path(), "b_same_name.json", &good);
        write(
            dir.path(),
            "c_builtin.json",
            &json!({
                "name": "flat_telemetry", "schema": {}, "gateway": {"value": "g"},
                "gateway_status": {"pointer": "/s"}
            })
            .to_string(),
        );
        write(dir.path(), "d_broken.json", "{\"name\": ");
        write(dir.path(), "e_not_utf8.json", "\u{0}");
        std::fs::write(dir.path().join("f_binary.json"), [0xff, 0xfe, 0x00]).unwrap();
        write(dir.path(), "README.md", "not a parser");
        write(dir.path(), ".hidden.json", "garbage");
        std::fs::create_dir(dir.path().join("nested.json")).unwrap();

        let errors = Registry::load(dir.path()).unwrap_err();
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 5, "{messages:#?}");
        let expect = [
            ("b_same_name.json", "already taken by"),
            ("c_builtin.json", "already taken by the built-in parser"),
            ("d_broken.json", "not valid JSON"),
            ("e_not_utf8.json", "not valid JSON"),
            ("f_binary.json", "not valid JSON"),
        ];
        for (error, (file, needle)) in errors.iter().zip(expect) {
            assert!(error.path().ends_with(file), "{error}");
            let text = error.to_string();
            assert!(
                text.starts_with(&error.path().display().to_string()),
                "{text}"
            );
            assert!(text.contains(needle), "{text}");
        }
        assert!(messages[0].contains("a_relay.json"), "{}", messages[0]);
    }

    #[test]
    fn folder_loading_succeeds_with_good_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "relay.json", &relay_definition().to_string());
        write(dir.path(), "notes.txt", "ignored");
        let registry = Registry::load(dir.path()).unwrap();
        assert_eq!(registry.names().len(), 4);
        let parser = registry.get("relay_test_v1").unwrap();
        assert_eq!(parser.kind(), "declarative");
        let info = registry
            .describe()
            .into_iter()
            .find(|info| info.name == "relay_test_v1")
            .unwrap();
        assert_eq!(info.description, "relay controller under test");
        assert_eq!(info.schema, relay_definition()["schema"]);
    }

    #[test]
    fn shipped_parsers_load_cleanly() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/parsers"));
        let registry = match Registry::load(dir) {
            Ok(registry) => registry,
            Err(errors) => panic!("shipped parsers do not load: {errors:#?}"),
        };
        let (files, _) = definition_files(dir);
        assert!(
            !files.is_empty(),
            "no parser files found in {}",
            dir.display()
        );
        assert_eq!(registry.names().len(), 3 + files.len());
    }

    #[test]
    fn shipped_relay_controller_handles_its_three_topics() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/parsers"));
        let parser = DeclarativeParser::from_file(&dir.join("relay_controller_v1.json"))
            .unwrap_or_else(|errors| panic!("{errors:#?}"));
        assert_eq!(parser.name(), "relay_controller_v1");

        let relay = run(
            &parser,
            "relayctl/ctl-7/relay/2",
            &[("gateway", "ctl-7"), ("channel", "2")],
            &json!({"state": "ON", "time": "2024-05-01T12:00:00Z"}),
        )
        .unwrap();
        assert_eq!(relay.dataloggers[0].sensors[0].name, "relay_2");
        assert_eq!(relay.dataloggers[0].sensors[0].value, 1.0);
        assert_eq!(relay.dataloggers[0].ts, received_at());

        let status = run(
            &parser,
            "relayctl/ctl-7/status",
            &[("gateway", "ctl-7")],
            &json!({"status": "online", "firmware": "1.4.2", "ip": "192.0.2.10"}),
        )
        .unwrap();
        assert_eq!(status.gateways[0].online, Some(true));
        assert_eq!(
            status.gateways[0].metadata.get("firmware"),
            Some(&json!("1.4.2"))
        );

        let telemetry = run(
            &parser,
            "relayctl/ctl-7/telemetry",
            &[("gateway", "ctl-7")],
            &json!({"temperature": 41.5, "supply_voltage": 12.1, "rssi": -67,
                    "time": received_at().timestamp_millis()}),
        )
        .unwrap();
        let record = &telemetry.dataloggers[0];
        assert_eq!(record.ts, received_at());
        assert_eq!(record.sensors.len(), 3);
        assert!(record
            .sensors
            .iter()
            .any(|s| s.name == "temperature" && s.unit.as_deref() == Some("°C")));

        let bad = run(
            &parser,
            "relayctl/ctl-7/telemetry",
            &[("gateway", "ctl-7")],
            &json!({"rssi": "weak"}),
        );
        assert!(matches!(bad, Err(ParseError::Schema(_))), "{bad:?}");
    }

    #[test]
    fn a_schema_copy_that_differs_from_the_built_in_one_is_found() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(outdated_schema_copy(dir.path()), None);
        let copy = dir.path().join(definition_schema::FILE_NAME);
        // Formatting does not matter, content does.
        let compact = serde_json::to_string(definition_schema()).unwrap();
        std::fs::write(&copy, compact).unwrap();
        assert_eq!(outdated_schema_copy(dir.path()), None);
        let mut older = definition_schema().clone();
        older["properties"]
            .as_object_mut()
            .unwrap()
            .remove("gateway_status");
        std::fs::write(&copy, older.to_string()).unwrap();
        assert_eq!(outdated_schema_copy(dir.path()), Some(copy.clone()));
        std::fs::write(&copy, "{").unwrap();
        assert_eq!(outdated_schema_copy(dir.path()), Some(copy));
    }
}
