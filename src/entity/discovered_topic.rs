//! Every topic a site's broker delivered, matched or not, with counters and a payload sample.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "discovered_topic")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub site_id: i32,
    pub topic: String,
    pub first_seen: DateTimeUtc,
    pub last_seen: DateTimeUtc,
    pub message_count: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_payload: Option<String>,
    pub is_processable: bool,
    pub mqtt_topic_id: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
