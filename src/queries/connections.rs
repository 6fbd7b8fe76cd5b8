//! A site's MQTT connection as the outside sees it: the stored row with its live retry state,
//! and never the password (the connections endpoints and the WebSocket snapshot send it).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Object;
use utoipa::ToSchema;

use crate::connection::{ConnectionStatus, Protocol, Will};
use crate::entity::mqtt_connection;
use crate::events::Subscription;
use crate::supervisor::SupervisorHandle;

/// A connection as the API shows it: the password never leaves the service, only whether one
/// is set.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Connection)]
pub struct ConnectionResponse {
    pub id: i32,
    pub site_id: i32,
    pub host: String,
    pub port: i32,
    #[schema(required)]
    pub username: Option<String>,
    /// The password itself is never returned.
    pub has_password: bool,
    pub client_id: String,
    pub use_tls: bool,
    #[schema(required)]
    pub ca_file: Option<String>,
    pub keepalive_secs: i32,
    pub clean_session: bool,
    pub is_active: bool,
    /// What the connection task last reported.
    #[schema(schema_with = status_schema)]
    pub status: String,
    #[schema(required)]
    pub last_error: Option<String>,
    #[schema(required)]
    pub connected_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Failed attempts since the last successful connect.
    pub reconnect_attempts: u32,
    /// The delay before the next attempt, while waiting for it.
    #[schema(required)]
    pub retry_in_ms: Option<u64>,
    /// Every filter of the current session, with the broker's answer (empty when not
    /// connected).
    pub subscriptions: Vec<Subscription>,
    #[schema(required)]
    pub last_message_at: Option<DateTime<Utc>>,
    /// A connected connection without a message for this long is `silent`; null: never.
    #[schema(required, minimum = 1)]
    pub max_silence_secs: Option<i32>,
    pub silent: bool,
    /// Subscribed besides the patterns' filters, so topics no pattern matches are discovered.
    #[schema(required)]
    pub discovery_filter: Option<String>,
    /// The instance running the connection (its first shard), or null when none does.
    #[schema(required)]
    pub owner: Option<String>,
    /// Clients sharing the connection's subscriptions (`$share/{client_id}/…`), each leased
    /// on its own.
    #[schema(minimum = 1)]
    pub shards: i32,
    /// Every shard with the instance running it and its status.
    pub shard_owners: Vec<ShardOwnerResponse>,
    /// Mutual TLS: the client certificate and key files, or null.
    #[schema(required)]
    pub client_cert_file: Option<String>,
    #[schema(required)]
    pub client_key_file: Option<String>,
    /// What the broker publishes when the service's session dies, or null.
    #[schema(required, value_type = Option<Will>)]
    pub last_will: Option<Will>,
    /// `"3.1.1"` or `"5"`.
    #[schema(schema_with = protocol_schema)]
    pub protocol: String,
    /// MQTT 5: how long the broker keeps the persistent session after the service leaves;
    /// null: as long as it can.
    #[schema(required, minimum = 0, maximum = 4_294_967_295_i64)]
    pub session_expiry_secs: Option<i64>,
}

/// One shard of a connection.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShardOwnerResponse {
    pub shard: i32,
    #[schema(required)]
    pub owner: Option<String>,
    #[schema(schema_with = status_schema)]
    pub status: String,
    #[schema(required)]
    pub last_error: Option<String>,
}

fn protocol_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Protocol::NAMES))
        .build()
}

fn status_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ConnectionStatus::ALL.map(ConnectionStatus::as_str)))
        .build()
}

impl ConnectionResponse {
    /// Status and error come from the row (what the connection task last wrote); retry details
    /// only exist in the supervisor's memory. Subscriptions, the last message and silence come
    /// from the running task when this process runs it, else from what it last wrote.
    pub fn new(model: mqtt_connection::Model, supervisor: &SupervisorHandle) -> ConnectionResponse {
        let live = supervisor.live_status(model.site_id);
        let stored_subscriptions: Vec<Subscription> = model
            .subscriptions
            .clone()
            .and_then(|value| serde_json::from_value(value).ok())
            .unwrap_or_default();
        let (subscriptions, last_message_at, silent) = match &live {
            Some(live) => (
                live.subscriptions.clone(),
                live.last_message_at.or(model.last_message_at),
                live.silent,
            ),
            None => (stored_subscriptions, model.last_message_at, model.silent),
        };
        let leases = supervisor.cluster().leases.of(model.id);
        let shard_owners: Vec<ShardOwnerResponse> = (0..model.shards.max(1))
            .map(|shard| {
                let lease = leases.iter().find(|lease| lease.shard == shard);
                // The first shard's status is the connection's own.
                let (status, last_error) = match (shard, lease) {
                    (0, _) => (model.status.clone(), model.last_error.clone()),
                    (_, Some(lease)) if lease.owner.is_some() => {
                        (lease.status.clone(), lease.last_error.clone())
                    }
                    _ => ("stopped".to_string(), None),
                };
                ShardOwnerResponse {
                    shard,
                    owner: lease.and_then(|lease| lease.owner.clone()),
                    status,
                    last_error,
                }
            })
            .collect();
        ConnectionResponse {
            owner: shard_owners.first().and_then(|shard| shard.owner.clone()),
            shards: model.shards.max(1),
            shard_owners,
            client_cert_file: model.client_cert_file.clone(),
            client_key_file: model.client_key_file.clone(),
            last_will: model
                .last_will
                .clone()
                .and_then(|value| serde_json::from_value(value).ok()),
            protocol: model.protocol.clone(),
            session_expiry_secs: model.session_expiry_secs,
            id: model.id,
            site_id: model.site_id,
            host: model.host,
            port: model.port,
            username: model.username,
            has_password: model.password.is_some(),
            client_id: model.client_id,
            use_tls: model.use_tls,
            ca_file: model.ca_file,
            keepalive_secs: model.keepalive_secs,
            clean_session: model.clean_session,
            is_active: model.is_active,
            status: model.status,
            last_error: model.last_error,
            connected_at: model.connected_at,
            created_at: model.created_at,
            updated_at: model.updated_at,
            reconnect_attempts: live.as_ref().map_or(0, |live| live.reconnect_attempts),
            retry_in_ms: live.and_then(|live| live.retry_in_ms),
            subscriptions,
            last_message_at,
            max_silence_secs: model.max_silence_secs,
            silent,
            discovery_filter: model.discovery_filter,
        }
    }
}

/// The stored connection row of a site, if it has one.
pub async fn find_by_site(
    db: &DatabaseConnection,
    site_id: i32,
) -> Result<Option<mqtt_connection::Model>, DbErr> {
    mqtt_connection::Entity::find()
        .filter(mqtt_connection::Column::SiteId.eq(site_id))
        .one(db)
        .await
}

/// The connection of a site in its response shape, if it has one.
pub async fn site_connection(
    db: &DatabaseConnection,
    supervisor: &SupervisorHandle,
    site_id: i32,
) -> Result<Option<ConnectionResponse>, DbErr> {
    Ok(find_by_site(db, site_id)
        .await?
        .map(|row| ConnectionResponse::new(row, supervisor)))
}
