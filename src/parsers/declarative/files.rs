//! Which files of the parser folder are parser definitions.

use std::path::{Path, PathBuf};

use crate::parsers::LoadError;

/// The definition files of a folder, sorted so that load order and error order are stable.
/// A missing folder holds no definitions.
pub(crate) fn definition_files(dir: &Path) -> (Vec<PathBuf>, Vec<LoadError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Vec::new(), Vec::new()),
        Err(source) => {
            return (
                Vec::new(),
                vec![LoadError::ReadDir {
                    dir: dir.to_path_buf(),
                    source,
                }],
            )
        }
    };
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(source) => {
                errors.push(LoadError::ReadDir {
                    dir: dir.to_path_buf(),
                    source,
                });
                continue;
            }
        };
        let named_like_one = path
            .file_name()
            .is_some_and(|name| is_definition_name(&name.to_string_lossy()));
        if named_like_one && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    (files, errors)
}

/// Only `*.json` files count; hidden files (editor locks, backups) and JSON Schemas kept beside
/// the definitions for editors (`*.schema.json`, such as the format's own) are not parsers.
fn is_definition_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !lower.starts_with('.') && lower.ends_with(".json") && !lower.ends_with(".schema.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_files_are_json_files_that_are_not_hidden_or_schemas() {
        for name in ["relay_controller_v1.json", "UPPER.JSON", "a.b.json"] {
            assert!(is_definition_name(name), "{name}");
        }
        for name in [
            "parser-definition.schema.json",
            "mine.Schema.JSON",
            ".relay.json",
            "README.md",
            "relay.json~",
            "json",
        ] {
            assert!(!is_definition_name(name), "{name}");
        }
    }
}
