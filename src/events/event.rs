//! The typed events the hub broadcasts to browsers; each serialises to a JSON object with a `type`.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct SensorUpdate {
    pub id: i32,
    pub name: String,
    pub unit: Option<String>,
    pub value: f64,
    pub ts: DateTime<Utc>,
}

/// Where a subscription stands, from SUBSCRIBE to the broker's SUBACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionState {
    /// Asked for, not answered yet.
    Pending,
    Granted,
    /// The broker answered 0x80 (its ACL, say): nothing will arrive on this filter.
    Refused,
}

/// One filter of a connection and the broker's answer to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Subscription {
    pub filter: String,
    /// The QoS asked for.
    #[schema(minimum = 0, maximum = 2)]
    pub qos: u8,
    pub state: SubscriptionState,
    /// The QoS the broker granted; lower than `qos` means a downgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2)]
    pub granted_qos: Option<u8>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ConnectionStatus {
        site_id: i32,
        status: String,
        last_error: Option<String>,
        /// Every filter with its state; sent when the status or a subscription changes.
        #[serde(skip_serializing_if = "Option::is_none")]
        subscriptions: Option<Vec<Subscription>>,
        /// The filters the broker refused.
        #[serde(skip_serializing_if = "Option::is_none")]
        refused_subscriptions: Option<Vec<String>>,
    },
    /// A connected connection that has had no message for `silent_secs`.
    ConnectionSilent {
        site_id: i32,
        silent_secs: u64,
    },
    DataloggerUpdate {
        site_id: i32,
        gateway: String,
        datalogger: String,
        ts: DateTime<Utc>,
        /// Absent when the news is retained.
        #[serde(skip_serializing_if = "Option::is_none")]
        is_online: Option<bool>,
        sensors: Vec<SensorUpdate>,
        /// Only retained messages (replayed by the broker on subscribe, perhaps hours old) made
        /// this update: its values follow their own `ts`, but it says nothing of whether the
        /// datalogger is online or when it was last seen. Sent only when true.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        retained: bool,
    },
    GatewayUpdate {
        site_id: i32,
        gateway: String,
        /// Absent when the news is retained.
        #[serde(skip_serializing_if = "Option::is_none")]
        is_online: Option<bool>,
        last_seen: Option<DateTime<Utc>>,
        metadata: Option<serde_json::Value>,
        /// As in `DataloggerUpdate`: old news that changes no `is_online` or `last_seen` (null).
        /// Sent only when true.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        retained: bool,
    },
    TopicDiscovered {
        site_id: i32,
        topic: String,
    },
    ParsingError {
        site_id: i32,
        topic: String,
        parser: Option<String>,
        error: String,
        log_id: Option<i32>,
    },
    /// A command to a device moved on (`queued`, `sent`, `delivered`, `confirmed`, `failed`,
    /// `expired`).
    CommandStatus {
        site_id: i32,
        id: i32,
        status: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl Event {
    pub fn site_id(&self) -> i32 {
        match self {
            Event::ConnectionStatus { site_id, .. }
            | Event::ConnectionSilent { site_id, .. }
            | Event::DataloggerUpdate { site_id, .. }
            | Event::GatewayUpdate { site_id, .. }
            | Event::TopicDiscovered { site_id, .. }
            | Event::ParsingError { site_id, .. }
            | Event::CommandStatus { site_id, .. } => *site_id,
        }
    }
}
