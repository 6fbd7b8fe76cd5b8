//! One change made through the API, or one refused attempt (`GET /api/audit-log`).

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub at: DateTimeUtc,
    /// `change` (accepted) or `refused` (401 or 403).
    pub kind: String,
    /// `admin`, `read` or `none`: the token's name, never the token.
    pub token: String,
    pub method: String,
    pub path: String,
    pub site_id: Option<i32>,
    #[sea_orm(column_type = "Text")]
    pub summary: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
