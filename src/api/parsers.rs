//! `/api/parsers`: the registry, a dry run of one parser on a sample message, and reloading the
//! declarative parsers from disk.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::ApiJson;
use crate::entity::mqtt_topic;
use crate::parsers::ParserInfo;
use crate::pipeline::prepare::{parse_payload, Outcome};
use crate::routing::TopicPattern;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct TestRequest {
    topic: String,
    /// Any JSON value; a string is taken as the raw payload text, so a payload that is not JSON
    /// (or is JSON inside a string) can be tried too.
    payload: Value,
    pattern: Option<String>,
}

pub async fn list(State(state): State<AppState>) -> Json<Vec<ParserInfo>> {
    Json(state.parsers.current().describe())
}

/// Runs the parser and reports what would be stored; nothing is written.
pub async fn test(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<TestRequest>,
) -> Result<Json<Value>, ApiError> {
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
    let outcome = parse_payload(
        &registry,
        &name,
        &body.topic,
        &captures,
        &bytes,
        Utc::now(),
        state.config.pipeline.max_payload_bytes,
    );
    Ok(Json(match outcome {
        Outcome::Parsed(output) => json!({"ok": true, "output": output, "captures": captures}),
        Outcome::Failed { error } => json!({"ok": false, "errors": [error], "captures": captures}),
        Outcome::Unrouted => json!({
            "ok": false,
            "errors": ["no pattern matched the topic"],
            "captures": captures,
        }),
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
