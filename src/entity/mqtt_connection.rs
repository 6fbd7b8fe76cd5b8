//! The one MQTT broker connection of a site, with its live status.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "mqtt_connection")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub site_id: i32,
    pub host: String,
    pub port: i32,
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_id: String,
    pub use_tls: bool,
    pub ca_file: Option<String>,
    pub keepalive_secs: i32,
    pub clean_session: bool,
    pub is_active: bool,
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub connected_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Each filter's state as the broker last answered it (`connection::SubscriptionState`).
    pub subscriptions: Option<Json>,
    pub last_message_at: Option<DateTimeUtc>,
    /// A connected connection without a message for this long is silent; null: never.
    pub max_silence_secs: Option<i32>,
    pub silent: bool,
    /// Subscribed besides the patterns' filters, so unmatched topics are discovered.
    pub discovery_filter: Option<String>,
    /// Clients (each leased on its own) sharing the subscriptions as `$share/{client_id}/…`.
    pub shards: i32,
    /// PEM files of the client certificate and its key, for brokers requiring mutual TLS.
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    /// `{"topic", "payload", "qos", "retain"}` the broker publishes when the session dies.
    pub last_will: Option<Json>,
    /// `"3.1.1"` or `"5"`.
    pub protocol: String,
    /// MQTT 5: how long the broker keeps a persistent session after we leave; null: as long
    /// as it can (the protocol's "never expires").
    pub session_expiry_secs: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
