//! One command to a device in the outbox (`/api/sites/{site_id}/commands`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "device_command")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub site_id: i32,
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: i16,
    pub retain: bool,
    /// `downlink::CommandStatus` by name.
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// The parser template it was made from, if any.
    pub template: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    pub delivered_at: Option<DateTimeUtc>,
    pub confirmed_at: Option<DateTimeUtc>,
    /// The device reply that confirms it, as `parsers::ConfirmRule` JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub confirm_rule: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
