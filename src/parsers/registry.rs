//! The registry: every parser known to the service, built-in and declarative, by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::command_template::CommandTemplate;
use super::declarative::{self, DeclarativeParser};
use super::errors::{LoadError, ParseError};
use super::parser::{ParseInput, Parser, ParserInfo};
use super::records::ParseOutput;
use super::{DataloggerReadingsV1, FlatTelemetry, GatewayStatusV1};

/// All parsers known to the service, by name. Cloning is cheap: the map is shared.
#[derive(Clone)]
pub struct Registry {
    parsers: Arc<BTreeMap<String, Arc<dyn Parser>>>,
    /// Every parser's command templates, by template name.
    commands: Arc<BTreeMap<String, Arc<CommandTemplate>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("parsers", &self.names())
            .finish()
    }
}

impl Registry {
    /// The built-in parsers only.
    pub fn builtin() -> Registry {
        Registry {
            parsers: Arc::new(builtin_map()),
            commands: Arc::default(),
        }
    }

    /// The built-ins plus every `*.json` file directly inside `dir` (a missing folder adds none).
    /// Every problem in every file is reported, not just the first.
    pub fn load(dir: &Path) -> Result<Registry, Vec<LoadError>> {
        let mut parsers = builtin_map();
        let mut loaded_from: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut commands: BTreeMap<String, Arc<CommandTemplate>> = BTreeMap::new();
        let (files, mut errors) = declarative::definition_files(dir);
        for file in files {
            match DeclarativeParser::from_file(&file) {
                Ok(parser) => {
                    let name = parser.name().to_owned();
                    if parsers.contains_key(&name) {
                        let taken_by = loaded_from.get(&name).map_or_else(
                            || "the built-in parser of that name".to_owned(),
                            |other| other.display().to_string(),
                        );
                        errors.push(LoadError::DuplicateName {
                            file,
                            name,
                            taken_by,
                        });
                        continue;
                    }
                    for template in parser.commands() {
                        if let Some(taken) = commands.get(&template.name) {
                            errors.push(LoadError::DuplicateCommand {
                                file: file.clone(),
                                name: template.name.clone(),
                                taken_by: taken.parser.clone(),
                            });
                        } else {
                            commands.insert(template.name.clone(), template.clone());
                        }
                    }
                    loaded_from.insert(name.clone(), file);
                    parsers.insert(name, Arc::new(parser));
                }
                Err(mut problems) => errors.append(&mut problems),
            }
        }
        if errors.is_empty() {
            Ok(Registry {
                parsers: Arc::new(parsers),
                commands: Arc::new(commands),
            })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Parser>> {
        self.parsers.get(name).cloned()
    }

    /// Every command template's name, sorted.
    pub fn command_names(&self) -> Vec<String> {
        self.commands.keys().cloned().collect()
    }

    /// The command template of that name, whichever parser declares it.
    pub fn command(&self, name: &str) -> Option<Arc<CommandTemplate>> {
        self.commands.get(name).cloned()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.parsers.contains_key(name)
    }

    /// Sorted.
    pub fn names(&self) -> Vec<String> {
        self.parsers.keys().cloned().collect()
    }

    /// Sorted by name.
    pub fn describe(&self) -> Vec<ParserInfo> {
        self.parsers
            .values()
            .map(|parser| ParserInfo {
                name: parser.name().to_owned(),
                kind: parser.kind(),
                description: parser.description().to_owned(),
                schema: parser.schema().clone(),
                commands: parser
                    .commands()
                    .iter()
                    .map(|template| template.info())
                    .collect(),
            })
            .collect()
    }

    /// Looks the parser up and runs it; an unknown name is a [`ParseError::UnknownParser`].
    pub fn parse(&self, name: &str, input: &ParseInput<'_>) -> Result<ParseOutput, ParseError> {
        match self.parsers.get(name) {
            Some(parser) => parser.parse(input),
            None => Err(ParseError::UnknownParser(name.to_owned())),
        }
    }
}

fn builtin_map() -> BTreeMap<String, Arc<dyn Parser>> {
    let parsers: [Arc<dyn Parser>; 3] = [
        Arc::new(DataloggerReadingsV1::new()),
        Arc::new(GatewayStatusV1::new()),
        Arc::new(FlatTelemetry::new()),
    ];
    parsers
        .into_iter()
        .map(|parser| (parser.name().to_owned(), parser))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::received_at;
    use super::*;
    use serde_json::json;

    #[test]
    fn registry_lists_the_builtins_sorted() {
        let registry = Registry::builtin();
        assert_eq!(
            registry.names(),
            vec![
                "datalogger_readings_v1",
                "flat_telemetry",
                "gateway_status_v1"
            ]
        );
        assert!(registry.contains("flat_telemetry"));
        assert!(!registry.contains("nope"));
        assert!(registry.get("gateway_status_v1").is_some());
        let described = registry.describe();
        assert_eq!(described.len(), 3);
        assert!(described.iter().all(|info| info.kind == "builtin"));
        assert!(described.iter().all(|info| !info.description.is_empty()));
        assert!(described.windows(2).all(|pair| pair[0].name < pair[1].name));
        let json = serde_json::to_value(&described).unwrap();
        assert_eq!(json[0]["name"], "datalogger_readings_v1");
        assert_eq!(json[0]["schema"]["type"], "object");
    }

    #[test]
    fn registry_reports_unknown_parsers() {
        let payload = json!({});
        let captures = BTreeMap::new();
        let input = ParseInput {
            topic: "t",
            captures: &captures,
            payload: &payload,
            user_properties: &[],
            received_at: received_at(),
        };
        let err = Registry::builtin().parse("nope_v9", &input).unwrap_err();
        assert_eq!(err, ParseError::UnknownParser("nope_v9".into()));
        assert!(err.to_string().contains("\"nope_v9\""));
    }

    #[test]
    fn missing_folder_means_builtins_only() {
        let dir = std::env::temp_dir().join("mqtt-supervisor-parsers-that-do-not-exist-7c1e");
        let registry = Registry::load(&dir).unwrap();
        assert_eq!(registry.names(), Registry::builtin().names());
    }

    #[test]
    fn a_file_instead_of_a_folder_is_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let errors = Registry::load(file.path()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(matches!(errors[0], LoadError::ReadDir { .. }));
        assert_eq!(errors[0].path(), file.path());
    }
}
