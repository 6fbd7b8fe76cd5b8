//! A payload that could not be stored, kept whole with its error so it can be replayed.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "mqtt_parsing_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub site_id: i32,
    pub topic: String,
    pub parser: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub error: String,
    #[sea_orm(column_type = "Blob")]
    pub payload: Vec<u8>,
    pub received_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub replayed_at: Option<DateTimeUtc>,
    /// The broker delivered it from its retained store: a replay keeps it old news.
    pub retained: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
