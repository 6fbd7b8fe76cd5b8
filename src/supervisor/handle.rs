//! The handle the rest of the service holds on the supervisor: wake it, read live statuses.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;

use crate::connection::ConnectionStatus;

#[derive(Debug, Clone, Serialize)]
pub struct LiveConnection {
    pub site_id: i32,
    pub connection_id: i32,
    pub status: ConnectionStatus,
    pub last_error: Option<String>,
    pub since: DateTime<Utc>,
    /// Failed attempts since the last successful connect.
    pub reconnect_attempts: u32,
    /// The delay chosen before the next attempt, while waiting.
    pub retry_in_ms: Option<u64>,
}

#[derive(Clone, Default)]
pub struct SupervisorHandle {
    wake: Arc<Notify>,
    live: Arc<RwLock<BTreeMap<i32, LiveConnection>>>,
}

impl SupervisorHandle {
    /// Asks for a reconcile pass now instead of at the next tick. Wakes coalesce: many changes in
    /// a burst cause one pass.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    pub fn live(&self) -> Vec<LiveConnection> {
        match self.live.read() {
            Ok(live) => live.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        }
    }

    pub fn live_status(&self, site_id: i32) -> Option<LiveConnection> {
        match self.live.read() {
            Ok(live) => live.get(&site_id).cloned(),
            Err(poisoned) => poisoned.into_inner().get(&site_id).cloned(),
        }
    }

    pub(crate) fn set_live(&self, connection: LiveConnection) {
        let mut live = match self.live.write() {
            Ok(live) => live,
            Err(poisoned) => poisoned.into_inner(),
        };
        live.insert(connection.site_id, connection);
    }

    pub(crate) fn set_retry(&self, site_id: i32, attempts: u32, delay: std::time::Duration) {
        let mut live = match self.live.write() {
            Ok(live) => live,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(connection) = live.get_mut(&site_id) {
            connection.reconnect_attempts = attempts;
            connection.retry_in_ms = Some(delay.as_millis() as u64);
        }
    }

    pub(crate) fn forget(&self, site_id: i32) {
        let mut live = match self.live.write() {
            Ok(live) => live,
            Err(poisoned) => poisoned.into_inner(),
        };
        live.remove(&site_id);
    }
}
