//! `/api/mqtt/topics`: a site's topic patterns, each bound to a parser. Patterns and parser names
//! are checked on the way in, so the supervisor never subscribes to something the broker refuses.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{ApiJson, Patch, PathId, QueryParams};
use super::pagination::Page;
use crate::entity::{mqtt_topic, site};
use crate::routing::TopicPattern;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct TopicResponse {
    pub id: i32,
    pub site_id: i32,
    pub pattern: String,
    pub parser: String,
    pub qos: i16,
    pub is_active: bool,
    pub priority: i32,
    /// What the broker is asked for: the pattern with each `{name}` as `+`. `null` only for a
    /// stored pattern that no longer validates (written before validation existed, or by hand).
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

#[derive(Debug, Deserialize)]
pub struct CreateTopic {
    site_id: i64,
    pattern: String,
    parser: String,
    qos: Option<i64>,
    is_active: Option<bool>,
    priority: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateTopic {
    #[serde(default)]
    pattern: Patch<String>,
    #[serde(default)]
    parser: Patch<String>,
    #[serde(default)]
    qos: Patch<i64>,
    #[serde(default)]
    is_active: Patch<bool>,
    #[serde(default)]
    priority: Patch<i64>,
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

fn validate_qos(qos: i64) -> Result<i16, ApiError> {
    if !(0..=2).contains(&qos) {
        return Err(ApiError::validation(
            "qos",
            format!("must be 0, 1 or 2 (got {qos})"),
        ));
    }
    Ok(qos as i16)
}

fn validate_priority(priority: i64) -> Result<i32, ApiError> {
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

pub async fn list(
    State(state): State<AppState>,
    params: QueryParams,
) -> Result<Json<Vec<TopicResponse>>, ApiError> {
    let page = Page::from_params(&params)?;
    let mut query = mqtt_topic::Entity::find();
    if let Some(site_id) = params.id("site_id")? {
        query = query.filter(mqtt_topic::Column::SiteId.eq(site_id));
    }
    let rows = query
        .order_by_asc(mqtt_topic::Column::SiteId)
        .order_by_asc(mqtt_topic::Column::Id)
        .limit(page.limit)
        .offset(page.offset)
        .all(&state.db)
        .await?;
    Ok(Json(rows.into_iter().map(TopicResponse::from).collect()))
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
    let site_exists = match i32::try_from(body.site_id) {
        Ok(site_id) => site::Entity::find_by_id(site_id)
            .one(&state.db)
            .await?
            .map(|site| site.id),
        Err(_) => None,
    };
    let Some(site_id) = site_exists else {
        return Err(ApiError::validation(
            "site_id",
            format!("site {} does not exist", body.site_id),
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
