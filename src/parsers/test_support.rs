//! Helpers shared by the parsers' unit tests: a fixed receive time, captures, running a parser.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::{decode_payload, ParseError, ParseInput, ParseOutput, Parser};

pub(crate) fn received_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

pub(crate) fn captures(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(crate) fn run(
    parser: &dyn Parser,
    topic: &str,
    pairs: &[(&str, &str)],
    payload: &Value,
) -> Result<ParseOutput, ParseError> {
    let captures = captures(pairs);
    parser.parse(&ParseInput {
        topic,
        captures: &captures,
        payload,
        user_properties: &[],
        received_at: received_at(),
    })
}

/// Decodes like the pipeline does, so hostile bytes take the real path.
pub(crate) fn run_bytes(
    parser: &dyn Parser,
    pairs: &[(&str, &str)],
    bytes: &[u8],
) -> Result<ParseOutput, ParseError> {
    let payload = decode_payload(bytes, 64 * 1024)?;
    run(parser, "test/topic", pairs, &payload)
}
