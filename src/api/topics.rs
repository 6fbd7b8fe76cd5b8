//! `/api/mqtt/topics`: a site's topic patterns, each bound to a parser. Patterns and parser names
//! are checked on the way in, so the supervisor never subscribes to something the broker refuses.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Order, Set};
use serde::{Deserialize, Serialize};
use utoipa::openapi::Object;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{ApiJson, JsonInteger, Patch, PathId};
use super::list::Listing;
use super::schema::{self, MAX_MQTT_STRING_BYTES};
use crate::entity::{mqtt_topic, site};
use crate::routing::TopicPattern;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Topic)]
pub struct TopicResponse {
    pub id: i32,
    pub site_id: i32,
    pub pattern: String,
    pub parser: String,
    #[schema(schema_with = qos_schema)]
    pub qos: i16,
    /// Parse matching messages, or only discover their topics.
    pub is_active: bool,
    /// When several active patterns match a topic, the highest wins.
    pub priority: i32,
    /// What the broker is asked for: the pattern with each `{name}` as `+`. `null` only for a
    /// stored pattern that no longer validates (written before validation existed, or by hand).
    #[schema(required)]
    pub subscription_filter: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<mqtt_topic::Model> for TopicResponse {
    fn from(model: mqtt_topic::Model) -> TopicResponse {
        let subscription_filter = TopicPattern::parse(&model.pattern)
            .ok()
            .map(|pattern| pattern.subscription_filter());
        TopicResponse {
            id: model.id,
            site_id: model.site_id,
            pattern: model.pattern,
            parser: model.parser,
            qos: model.qos,
            is_active: model.is_active,
            priority: model.priority,
            subscription_filter,
            created_at: model.created_at,
            updated_at: model.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TopicCreate)]
pub struct CreateTopic {
    /// An existing site.
    #[schema(schema_with = schema::id)]
    site_id: JsonInteger,
    #[schema(schema_with = pattern_schema)]
    pattern: String,
    /// The name of a parser in the registry.
    #[schema(schema_with = parser_schema)]
    parser: String,
    /// Default 1.
    #[schema(schema_with = optional_qos_schema)]
    qos: Option<JsonInteger>,
    /// Default true.
    is_active: Option<bool>,
    /// Default 0.
    #[schema(schema_with = optional_priority_schema)]
    priority: Option<JsonInteger>,
}

/// Only the fields given change; none of them may be `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TopicPatch)]
pub struct UpdateTopic {
    #[serde(default)]
    #[schema(schema_with = pattern_schema)]
    pattern: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = parser_schema)]
    parser: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = qos_schema)]
    qos: Patch<JsonInteger>,
    #[serde(default)]
    #[schema(value_type = bool)]
    is_active: Patch<bool>,
    #[serde(default)]
    #[schema(schema_with = priority_schema)]
    priority: Patch<JsonInteger>,
}

/// One level of a filter other than '#': '+', a `{name}` capture, or literal text without
/// wildcards or braces (possibly empty, as MQTT allows).
const LEVEL: &str = r"(?:\+|\{[A-Za-z_][A-Za-z0-9_]*\}|[^/+#{}\x00]*)";

/// The pattern grammar of `TopicPattern::parse` as one regular expression, so the document
/// states exactly which patterns are accepted (a unit test holds the two together): not empty,
/// '#' only as the last level, no capture name twice, and an optional `$share/<group>/` prefix
/// with a group free of wildcards and braces before a filter that is not empty.
pub fn pattern_regex() -> String {
    let filter = format!("(?:{LEVEL}/)*(?:{LEVEL}|#)");
    format!(
        r"^(?=[\s\S])(?![\s\S]*\{{([A-Za-z_][A-Za-z0-9_]*)\}}[\s\S]*\{{\1\}})(?:\$share/[^/+#{{}}\x00]+/(?=[\s\S]){filter}|(?!\$share(?:/|$)){filter})$"
    )
}

pub fn pattern_schema() -> Object {
    schema::string()
        .min_length(Some(1))
        .max_length(Some(MAX_MQTT_STRING_BYTES))
        .pattern(Some(pattern_regex()))
        .description(Some(
            "An MQTT filter ('+', '#' as the last level, an optional $share/<group>/ prefix) \
             whose levels may be {name} captures, each name once; at most 65535 bytes as UTF-8.",
        ))
        .build()
}

/// The names are the registry's: the served document lists them (see `openapi::document`).
fn parser_schema() -> Object {
    schema::string().min_length(Some(1)).build()
}

fn qos_schema() -> Object {
    schema::integer(0, 2).build()
}

fn optional_qos_schema() -> Object {
    schema::or_null(schema::integer(0, 2))
}

fn priority_schema() -> Object {
    schema::integer(i64::from(i32::MIN), i64::from(i32::MAX)).build()
}

fn optional_priority_schema() -> Object {
    schema::or_null(schema::integer(i64::from(i32::MIN), i64::from(i32::MAX)))
}

fn validate_pattern(pattern: &str) -> Result<String, ApiError> {
    TopicPattern::parse(pattern)
        .map(|_| pattern.to_string())
        .map_err(|error| ApiError::validation("pattern", error.to_string()))
}

fn validate_parser(state: &AppState, parser: &str) -> Result<String, ApiError> {
    let registry = state.parsers.current();
    if registry.contains(parser) {
        return Ok(parser.to_string());
    }
    Err(ApiError::validation(
        "parser",
        format!(
            "unknown parser '{parser}'; known parsers: {}",
            registry.names().join(", ")
        ),
    ))
}

fn validate_qos(JsonInteger(qos): JsonInteger) -> Result<i16, ApiError> {
    if !(0..=2).contains(&qos) {
        return Err(ApiError::validation(
            "qos",
            format!("must be 0, 1 or 2 (got {qos})"),
        ));
    }
    Ok(qos as i16)
}

fn validate_priority(JsonInteger(priority): JsonInteger) -> Result<i32, ApiError> {
    i32::try_from(priority).map_err(|_| {
        ApiError::validation(
            "priority",
            format!("must be between {} and {}", i32::MIN, i32::MAX),
        )
    })
}

async fn find(state: &AppState, id: i32) -> Result<mqtt_topic::Model, ApiError> {
    mqtt_topic::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("topic pattern {id} not found")))
}

/// `GET /api/mqtt/topics`: by site, then id.
pub struct TopicList;

impl Listing for TopicList {
    type Entity = mqtt_topic::Entity;
    type Item = TopicResponse;
    const SITE_COLUMN: Option<mqtt_topic::Column> = Some(mqtt_topic::Column::SiteId);
    fn order() -> Vec<(mqtt_topic::Column, Order)> {
        vec![
            (mqtt_topic::Column::SiteId, Order::Asc),
            (mqtt_topic::Column::Id, Order::Asc),
        ]
    }
    fn item(row: mqtt_topic::Model, _: &AppState) -> TopicResponse {
        row.into()
    }
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTopic>,
) -> Result<(StatusCode, Json<TopicResponse>), ApiError> {
    let pattern = validate_pattern(&body.pattern)?;
    let parser = validate_parser(&state, &body.parser)?;
    let qos = body.qos.map(validate_qos).transpose()?.unwrap_or(1);
    let priority = body
        .priority
        .map(validate_priority)
        .transpose()?
        .unwrap_or(0);
    let site_exists = match i32::try_from(body.site_id.0) {
        Ok(site_id) => site::Entity::find_by_id(site_id)
            .one(&state.db)
            .await?
            .map(|site| site.id),
        Err(_) => None,
    };
    let Some(site_id) = site_exists else {
        return Err(ApiError::validation(
            "site_id",
            format!("site {} does not exist", body.site_id.0),
        ));
    };
    let now = Utc::now();
    let row = mqtt_topic::ActiveModel {
        site_id: Set(site_id),
        pattern: Set(pattern),
        parser: Set(parser),
        qos: Set(qos),
        is_active: Set(body.is_active.unwrap_or(true)),
        priority: Set(priority),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&state.db)
    .await?;
    // The running client must subscribe to the new filter.
    state.supervisor.wake();
    Ok((StatusCode::CREATED, Json(row.into())))
}

pub async fn get(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<TopicResponse>, ApiError> {
    Ok(Json(find(&state, id).await?.into()))
}

pub async fn update(
    State(state): State<AppState>,
    PathId(id): PathId,
    ApiJson(body): ApiJson<UpdateTopic>,
) -> Result<Json<TopicResponse>, ApiError> {
    let pattern = body
        .pattern
        .required("pattern")?
        .map(|pattern| validate_pattern(&pattern))
        .transpose()?;
    let parser = body
        .parser
        .required("parser")?
        .map(|parser| validate_parser(&state, &parser))
        .transpose()?;
    let qos = body.qos.required("qos")?.map(validate_qos).transpose()?;
    let priority = body
        .priority
        .required("priority")?
        .map(validate_priority)
        .transpose()?;
    let is_active = body.is_active.required("is_active")?;
    let mut row = find(&state, id).await?.into_active_model();
    if let Some(pattern) = pattern {
        row.pattern = Set(pattern);
    }
    if let Some(parser) = parser {
        row.parser = Set(parser);
    }
    if let Some(qos) = qos {
        row.qos = Set(qos);
    }
    if let Some(priority) = priority {
        row.priority = Set(priority);
    }
    if let Some(is_active) = is_active {
        row.is_active = Set(is_active);
    }
    row.updated_at = Set(Utc::now());
    let updated = row.update(&state.db).await?;
    state.supervisor.wake();
    Ok(Json(updated.into()))
}

pub async fn delete(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    let result = mqtt_topic::Entity::delete_by_id(id).exec(&state.db).await?;
    if result.rows_affected == 0 {
        return Err(ApiError::not_found(format!("topic pattern {id} not found")));
    }
    state.supervisor.wake();
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex_accepts(validator: &jsonschema::Validator, pattern: &str) -> bool {
        validator.is_valid(&serde_json::Value::String(pattern.to_string()))
    }

    /// The document's regular expression and the pattern parser agree, on chosen cases and on
    /// many strings made of the characters the grammar cares about.
    #[test]
    fn the_documented_grammar_is_the_parsers() {
        let schema = serde_json::json!({"type": "string", "pattern": pattern_regex()});
        let validator = jsonschema::validator_for(&schema).expect("the regex compiles");
        for case in [
            "a/b",
            "plant/{gateway}/{datalogger}",
            "a/+/#",
            "#",
            "+",
            "/",
            "a//b",
            "$share/g/x/#",
            "$share/g/{a}",
            "$shared/x",
            "$SYS/#",
            "",
            "a/#/b",
            "a/b#",
            "x/+y",
            "a/{x}/{x}",
            "a/{x}/{xy}",
            "a/{1x}",
            "dev-{id}",
            "$share",
            "$share/",
            "$share/g",
            "$share/g/",
            "$share//x",
            "$share/g+/x",
            "a\u{0}b",
            "a/\n/b",
        ] {
            assert_eq!(
                regex_accepts(&validator, case),
                TopicPattern::parse(case).is_ok(),
                "{case:?}"
            );
        }
        let pieces = [
            "a", "b", "/", "+", "#", "{", "}", "{x}", "{y}", "{_1}", "$share", "$share/", "g", " ",
            "\n", "\u{0}", "1", "é",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let length = (next() % 7) as usize;
            let case: String = (0..length)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            assert_eq!(
                regex_accepts(&validator, &case),
                TopicPattern::parse(&case).is_ok(),
                "{case:?}"
            );
        }
    }
}
