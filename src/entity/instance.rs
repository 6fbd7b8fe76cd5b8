//! A running `serve` process sharing the database: its address and when it last proved alive.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "instance")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub http_addr: String,
    pub host: String,
    pub pid: i32,
    pub started_at: DateTimeUtc,
    pub heartbeat_at: DateTimeUtc,
    /// Browsers on its WebSocket, so others know whether to forward their events.
    pub websocket_clients: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
