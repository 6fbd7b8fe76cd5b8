//! The live state of every running connection as its task last reported it: written by the
//! connection tasks, read by the API, the page and `/health`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ConnectionStatus;
use crate::events::Subscription;

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
    /// This session's filters and the broker's answers.
    pub subscriptions: Vec<Subscription>,
    pub last_message_at: Option<DateTime<Utc>>,
    /// Connected, but without a message for the connection's `max_silence_secs`.
    pub silent: bool,
}

/// Shared by every connection task and the readers; cheap to clone.
#[derive(Clone, Default)]
pub struct LiveConnections {
    by_site: Arc<RwLock<BTreeMap<i32, LiveConnection>>>,
}

impl LiveConnections {
    /// A poisoned lock still holds a usable map: a status board is not worth a panic.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<i32, LiveConnection>> {
        self.by_site
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<i32, LiveConnection>> {
        self.by_site
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn all(&self) -> Vec<LiveConnection> {
        self.read().values().cloned().collect()
    }

    pub fn get(&self, site_id: i32) -> Option<LiveConnection> {
        self.read().get(&site_id).cloned()
    }

    pub fn set(&self, connection: LiveConnection) {
        self.write().insert(connection.site_id, connection);
    }

    /// Records the wait before the next attempt of a connection that is down.
    pub fn set_retry(&self, site_id: i32, attempts: u32, delay: Duration) {
        if let Some(connection) = self.write().get_mut(&site_id) {
            connection.reconnect_attempts = attempts;
            connection.retry_in_ms = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        }
    }

    /// Changes a shown connection in place; one not shown is left alone.
    pub fn update(&self, site_id: i32, change: impl FnOnce(&mut LiveConnection)) {
        if let Some(connection) = self.write().get_mut(&site_id) {
            change(connection);
        }
    }

    pub fn forget(&self, site_id: i32) {
        self.write().remove(&site_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_shown_until_it_is_forgotten() {
        let live = LiveConnections::default();
        let reader = live.clone();
        live.set(LiveConnection {
            site_id: 3,
            connection_id: 30,
            status: ConnectionStatus::Reconnecting,
            last_error: Some("refused".into()),
            since: Utc::now(),
            reconnect_attempts: 0,
            retry_in_ms: None,
            subscriptions: Vec::new(),
            last_message_at: None,
            silent: false,
        });
        live.set_retry(3, 2, Duration::from_millis(1500));
        live.set_retry(4, 1, Duration::from_secs(1));
        live.update(3, |connection| connection.silent = true);
        let shown = reader.get(3).expect("shown");
        assert_eq!(
            (shown.reconnect_attempts, shown.retry_in_ms),
            (2, Some(1500))
        );
        assert_eq!(reader.all().len(), 1);
        live.forget(3);
        assert!(reader.get(3).is_none());
    }
}
