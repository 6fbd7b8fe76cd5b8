//! One reading of a sensor, keyed by (sensor, timestamp) so a redelivered message stores nothing new.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "sensor_reading")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sensor_id: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub ts: DateTimeUtc,
    #[sea_orm(column_type = "Double")]
    pub value: f64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
