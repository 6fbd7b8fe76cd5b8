//! What a parser is: the `Parser` trait, the message it is handed, and how it is listed.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::command_template::{CommandInfo, CommandTemplate};
use super::errors::ParseError;
use super::records::ParseOutput;

/// One message handed to a parser.
#[derive(Debug, Clone, Copy)]
pub struct ParseInput<'a> {
    pub topic: &'a str,
    /// Named single-level captures of the topic pattern, e.g. `{gateway}` → `"gw-01"`.
    pub captures: &'a BTreeMap<String, String>,
    pub payload: &'a Value,
    /// MQTT 5 user properties in the order sent (empty on 3.1.1): a declarative parser may take
    /// an identifier or the timestamp from one.
    pub user_properties: &'a [(String, String)],
    pub received_at: DateTime<Utc>,
}

/// A parser turns one message into records.
pub trait Parser: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// The JSON Schema every payload must satisfy before it is mapped.
    fn schema(&self) -> &Value;
    /// `"builtin"` or `"declarative"`.
    fn kind(&self) -> &'static str;
    /// Validates the payload against [`Parser::schema`], then maps it.
    fn parse(&self, input: &ParseInput<'_>) -> Result<ParseOutput, ParseError>;
    /// Reads the raw payload without building a JSON tree, for the shape that nearly every
    /// message of this parser has. Returns exactly what decoding and [`Parser::parse`] would
    /// return for a payload it can prove acceptable, and `None` for anything else, which then
    /// takes the full path and gets its error message there.
    fn parse_fast(&self, _input: &BytesInput<'_>) -> Option<ParseOutput> {
        None
    }
    /// The commands its devices accept (declared in a definition's `commands`).
    fn commands(&self) -> &[Arc<CommandTemplate>] {
        &[]
    }
}

/// One message as received, for [`Parser::parse_fast`]; the size limit is already checked.
#[derive(Debug, Clone, Copy)]
pub struct BytesInput<'a> {
    pub captures: &'a BTreeMap<String, String>,
    pub payload: &'a [u8],
    pub received_at: DateTime<Utc>,
}

/// A parser as `GET /api/parsers` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParserInfo {
    pub name: String,
    pub kind: &'static str,
    pub description: String,
    pub schema: Value,
    /// Its command templates.
    pub commands: Vec<CommandInfo>,
}

/// A topic capture, unless the pattern lacks it or it matched an empty topic level.
pub(crate) fn capture<'a>(captures: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    captures
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

/// The built-ins' identifier rule: a non-empty payload string field wins over the capture.
pub(crate) fn payload_or_capture(input: &ParseInput<'_>, key: &str) -> Option<String> {
    input
        .payload
        .get(key)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .or_else(|| capture(input.captures, key))
        .map(str::to_owned)
}
