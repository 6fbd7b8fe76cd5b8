//! Who runs one shard of a connection, until when, and how that shard is doing.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "connection_lease")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub connection_id: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub shard: i32,
    /// The instance holding the lease; null when released.
    pub owner: Option<String>,
    /// Bumped each time the lease changes hands.
    pub epoch: i64,
    /// In the database's clock; a lease past it is free to take.
    pub expires_at: Option<DateTimeUtc>,
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
