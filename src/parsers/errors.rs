//! Why a payload was not stored (`ParseError`) and why a parser file was refused (`LoadError`).

use std::path::{Path, PathBuf};

use super::json_pointer::pointer_label;

/// Why a payload was not stored. The text is written to the parsing log and shown to operators,
/// so every message names the offending field (as a JSON pointer) or the setting to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "payload is {size} bytes, over the {limit}-byte limit; shorten the message at the device \
         or raise the payload size limit"
    )]
    TooLarge { size: usize, limit: usize },
    #[error(
        "payload is not UTF-8 text (invalid byte sequence at byte offset {offset}); \
         JSON payloads must be UTF-8 encoded"
    )]
    NotUtf8 { offset: usize },
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("payload is empty; a JSON document was expected")]
    Empty,
    #[error(
        "payload nests arrays/objects deeper than {limit} levels (limit exceeded at byte offset \
         {offset})"
    )]
    TooDeep { limit: usize, offset: usize },
    /// JSON Schema violations, each `"<instance path>: <message>"`.
    #[error("payload does not match the parser's JSON Schema: {}", .0.join("; "))]
    Schema(Vec<String>),
    /// The text says where the identifier was looked for, e.g. which capture and payload field.
    #[error("missing identifier: {0}")]
    MissingIdentifier(&'static str),
    /// A declarative parser found none of its configured identifier sources.
    #[error("missing {entity} identifier: {tried}")]
    IdentifierNotFound { entity: &'static str, tried: String },
    #[error(
        "sensor name template {template:?} needs the topic capture {{{capture}}}, which the topic \
         pattern does not provide (or it matched an empty level)"
    )]
    MissingCapture { capture: String, template: String },
    #[error("invalid value at {}: {reason}", pointer_label(.pointer))]
    InvalidValue { pointer: String, reason: String },
    #[error(
        "no parser named {0:?} is registered; bind the topic pattern to one of the names listed \
         by GET /api/parsers"
    )]
    UnknownParser(String),
}

impl ParseError {
    pub(crate) fn invalid(pointer: impl Into<String>, reason: impl Into<String>) -> Self {
        ParseError::InvalidValue {
            pointer: pointer.into(),
            reason: reason.into(),
        }
    }
}

/// A problem with one declarative parser file, or with the folder that holds them.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot list the parser folder: {source}", .dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot read the file: {source}", .file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not valid JSON: {message}", .file.display())]
    Json { file: PathBuf, message: String },
    #[error("{}: {problem}", .file.display())]
    Invalid { file: PathBuf, problem: String },
    #[error("{}: \"schema\" is not a usable JSON Schema: {message}", .file.display())]
    Schema { file: PathBuf, message: String },
    #[error(
        "{}: parser name {name:?} is already taken by {taken_by}; give this parser another \"name\"",
        .file.display()
    )]
    DuplicateName {
        file: PathBuf,
        name: String,
        taken_by: String,
    },
    #[error(
        "{}: command template {name:?} is already declared by parser {taken_by}; template names \
         are unique across parsers, so rename one",
        .file.display()
    )]
    DuplicateCommand {
        file: PathBuf,
        name: String,
        taken_by: String,
    },
}

impl LoadError {
    /// The file (or folder) the problem is about.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::ReadDir { dir, .. } => dir,
            LoadError::Read { file, .. }
            | LoadError::Json { file, .. }
            | LoadError::Invalid { file, .. }
            | LoadError::Schema { file, .. }
            | LoadError::DuplicateName { file, .. }
            | LoadError::DuplicateCommand { file, .. } => file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_value_at_root_reads_well() {
        let err = ParseError::invalid("", "nothing to store");
        assert_eq!(err.to_string(), "invalid value at (root): nothing to store");
    }
}
