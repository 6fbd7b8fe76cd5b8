//! `/api/mqtt/discovered-topics`: every topic a site's broker delivered, most recently seen first.

use chrono::{DateTime, Utc};
use sea_orm::Order;
use serde::Serialize;
use utoipa::ToSchema;

use super::list::Listing;
use crate::entity::discovered_topic;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DiscoveredTopic)]
pub struct DiscoveredTopicResponse {
    pub id: i32,
    pub site_id: i32,
    pub topic: String,
    /// Deliveries counted (a redelivered message counts again).
    pub message_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// An active pattern with a known parser matches the topic.
    pub is_processable: bool,
    /// The pattern that matched it.
    #[schema(required)]
    pub mqtt_topic_id: Option<i32>,
    /// The start of the latest payload.
    #[schema(required)]
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

/// `GET /api/mqtt/discovered-topics`: most recently seen first.
pub struct DiscoveredTopicList;

impl Listing for DiscoveredTopicList {
    type Entity = discovered_topic::Entity;
    type Item = DiscoveredTopicResponse;
    const SITE_COLUMN: Option<discovered_topic::Column> = Some(discovered_topic::Column::SiteId);
    fn order() -> Vec<(discovered_topic::Column, Order)> {
        vec![
            (discovered_topic::Column::LastSeen, Order::Desc),
            (discovered_topic::Column::Id, Order::Desc),
        ]
    }
    fn item(row: discovered_topic::Model, _: &AppState) -> DiscoveredTopicResponse {
        row.into()
    }
}
