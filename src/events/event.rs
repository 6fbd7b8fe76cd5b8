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

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ConnectionStatus {
        site_id: i32,
        status: String,
        last_error: Option<String>,
    },
    DataloggerUpdate {
        site_id: i32,
        gateway: String,
        datalogger: String,
        ts: DateTime<Utc>,
        is_online: bool,
        sensors: Vec<SensorUpdate>,
    },
    GatewayUpdate {
        site_id: i32,
        gateway: String,
        is_online: bool,
        last_seen: Option<DateTime<Utc>>,
        metadata: Option<serde_json::Value>,
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
}

impl Event {
    pub fn site_id(&self) -> i32 {
        match self {
            Event::ConnectionStatus { site_id, .. }
            | Event::DataloggerUpdate { site_id, .. }
            | Event::GatewayUpdate { site_id, .. }
            | Event::TopicDiscovered { site_id, .. }
            | Event::ParsingError { site_id, .. } => *site_id,
        }
    }
}
