//! A gateway of a site: the device that forwards its dataloggers' readings.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "gateway")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub site_id: i32,
    pub identifier: String,
    pub name: Option<String>,
    pub last_seen: Option<DateTimeUtc>,
    pub is_online: bool,
    pub metadata: Option<Json>,
    pub created_at: DateTimeUtc,
    /// Why `is_online` was last written: `status_message`, `offline_timeout` or `message`.
    pub online_cause: Option<String>,
    pub online_changed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
