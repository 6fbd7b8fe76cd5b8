//! A sensor of a datalogger with its latest value.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "sensor")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub datalogger_id: i32,
    pub name: String,
    pub unit: Option<String>,
    #[sea_orm(column_type = "Double", nullable)]
    pub last_value: Option<f64>,
    pub last_reading_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
