//! `/api/mqtt/discovered-topics`: every topic a site's broker delivered, most recently seen first.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use super::error::ApiError;
use super::extract::QueryParams;
use super::pagination::Page;
use crate::entity::discovered_topic;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct DiscoveredTopicResponse {
    pub id: i32,
    pub site_id: i32,
    pub topic: String,
    pub message_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub is_processable: bool,
    pub mqtt_topic_id: Option<i32>,
    pub last_payload: Option<String>,
}

impl From<discovered_topic::Model> for DiscoveredTopicResponse {
    fn from(model: discovered_topic::Model) -> DiscoveredTopicResponse {
        DiscoveredTopicResponse {
            id: model.id,
            site_id: model.site_id,
            topic: model.topic,
            message_count: model.message_count,
            first_seen: model.first_seen,
            last_seen: model.last_seen,
            is_processable: model.is_processable,
            mqtt_topic_id: model.mqtt_topic_id,
            last_payload: model.last_payload,
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    params: QueryParams,
) -> Result<Json<Vec<DiscoveredTopicResponse>>, ApiError> {
    let page = Page::from_params(&params)?;
    let mut query = discovered_topic::Entity::find();
    if let Some(site_id) = params.id("site_id")? {
        query = query.filter(discovered_topic::Column::SiteId.eq(site_id));
    }
    let rows = query
        .order_by_desc(discovered_topic::Column::LastSeen)
        .order_by_desc(discovered_topic::Column::Id)
        .limit(page.limit)
        .offset(page.offset)
        .all(&state.db)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(DiscoveredTopicResponse::from)
            .collect(),
    ))
}
