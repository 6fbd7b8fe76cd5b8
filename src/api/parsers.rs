//! `/api/parsers`: the registry, a dry run of one parser on a sample message, and reloading the
//! declarative parsers from disk.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{SchemaType, Type};
use utoipa::openapi::Object;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{ApiJson, PathName};
use super::foreign_schemas::ParseOutputSchema;
use super::{schema, topics};
use crate::entity::mqtt_topic;
use crate::parsers::{ParseOutput, ParserInfo};
use crate::pipeline::prepare::{parse_payload, Outcome, RawMessage};
use crate::routing::TopicPattern;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ParserTestRequest)]
pub struct TestRequest {
    /// A topic name as a device publishes it: not empty, without '+' or '#'.
    #[schema(schema_with = topic_schema)]
    topic: String,
    /// Any JSON value; a string is taken as the raw payload text, so a payload that is not JSON
    /// (or is JSON inside a string) can be tried too.
    #[schema(value_type = Value)]
    payload: Value,
    /// The pattern whose captures to use; it must match the topic. Default: the first active
    /// stored pattern of this parser that matches.
    #[schema(schema_with = optional_pattern_schema)]
    pattern: Option<String>,
    /// MQTT 5 user properties the message would carry, as name → value (default none).
    user_properties: Option<BTreeMap<String, String>>,
}

/// What the dry run found: `output` when the payload parses, `errors` when it does not.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ParserTestResult)]
pub struct TestResult {
    /// The topic's captures the parser saw.
    captures: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<String>)]
    errors: Option<Vec<String>>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = ParseOutputSchema)]
    output: Option<ParseOutput>,
}

fn topic_schema() -> Object {
    schema::string()
        .min_length(Some(1))
        .pattern(Some("^[^+#]*$"))
        .build()
}

fn optional_pattern_schema() -> Object {
    let mut object = topics::pattern_schema();
    object.schema_type = SchemaType::Array(vec![Type::String, Type::Null]);
    object
}

pub async fn list(State(state): State<AppState>) -> Json<Vec<ParserInfo>> {
    Json(state.parsers.current().describe())
}

/// Runs the parser and reports what would be stored; nothing is written.
pub async fn test(
    State(state): State<AppState>,
    PathName(name): PathName,
    ApiJson(body): ApiJson<TestRequest>,
) -> Result<Json<TestResult>, ApiError> {
    let registry = state.parsers.current();
    if !registry.contains(&name) {
        return Err(ApiError::not_found(format!("parser '{name}' not found")));
    }
    if body.topic.is_empty() {
        return Err(ApiError::validation("topic", "must not be empty"));
    }
    if body.topic.contains(['+', '#']) {
        return Err(ApiError::validation(
            "topic",
            "must be a topic name as a device publishes it, without '+' or '#'",
        ));
    }
    let captures = match &body.pattern {
        Some(pattern) => {
            let parsed = TopicPattern::parse(pattern)
                .map_err(|error| ApiError::validation("pattern", error.to_string()))?;
            parsed.matches(&body.topic).ok_or_else(|| {
                ApiError::validation(
                    "pattern",
                    format!("'{pattern}' does not match the topic '{}'", body.topic),
                )
            })?
        }
        None => stored_captures(&state, &name, &body.topic).await?,
    };
    let bytes = match &body.payload {
        Value::String(text) => text.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    };
    let user_properties: Vec<(String, String)> = body
        .user_properties
        .unwrap_or_default()
        .into_iter()
        .collect();
    let outcome = parse_payload(
        &registry,
        &name,
        &RawMessage {
            topic: &body.topic,
            captures: &captures,
            payload: &bytes,
            user_properties: &user_properties,
            received_at: Utc::now(),
        },
        state.config.pipeline.max_payload_bytes,
    );
    let (output, errors) = match outcome {
        Outcome::Parsed(output) => (Some(output), None),
        Outcome::Failed { error } => (None, Some(vec![error])),
        Outcome::Unrouted => (None, Some(vec!["no pattern matched the topic".to_string()])),
    };
    Ok(Json(TestResult {
        captures,
        ok: output.is_some(),
        errors,
        output,
    }))
}

/// The captures of the first active stored pattern bound to this parser that matches the topic
/// (none if no pattern matches: the parser then sees only the payload).
async fn stored_captures(
    state: &AppState,
    parser: &str,
    topic: &str,
) -> Result<BTreeMap<String, String>, ApiError> {
    let patterns = mqtt_topic::Entity::find()
        .filter(mqtt_topic::Column::Parser.eq(parser))
        .filter(mqtt_topic::Column::IsActive.eq(true))
        .order_by_asc(mqtt_topic::Column::Id)
        .all(&state.db)
        .await?;
    Ok(patterns
        .iter()
        .filter_map(|row| TopicPattern::parse(&row.pattern).ok())
        .find_map(|pattern| pattern.matches(topic))
        .unwrap_or_default())
}

/// On any error the registry in force stays as it was, and every problem is listed.
pub async fn reload(State(state): State<AppState>) -> Result<Json<Vec<ParserInfo>>, ApiError> {
    let store = state.parsers.clone();
    let directory = state.config.pipeline.parsers_dir.clone();
    // Reading and compiling the files is blocking work.
    let result = tokio::task::spawn_blocking(move || store.reload(&directory))
        .await
        .map_err(|error| ApiError::Internal(format!("parser reload task failed: {error}")))?;
    match result {
        Ok(registry) => Ok(Json(registry.describe())),
        Err(errors) => {
            let details: Vec<String> = errors.iter().map(ToString::to_string).collect();
            Err(ApiError::Invalid {
                code: "parser_load_failed",
                message: format!(
                    "{} problem(s) loading {}; the parsers in force are unchanged: {}",
                    details.len(),
                    state.config.pipeline.parsers_dir.display(),
                    details.join("; ")
                ),
                details,
            })
        }
    }
}
