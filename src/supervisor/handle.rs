//! The handle the rest of the service holds on the supervisor: wake it, read live statuses.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::connection::{LiveConnection, LiveConnections};

#[derive(Clone, Default)]
pub struct SupervisorHandle {
    wake: Arc<Notify>,
    live: LiveConnections,
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

    /// What the connection tasks report into.
    pub fn live_connections(&self) -> LiveConnections {
        self.live.clone()
    }

    pub fn live(&self) -> Vec<LiveConnection> {
        self.live.all()
    }

    pub fn live_status(&self, site_id: i32) -> Option<LiveConnection> {
        self.live.get(site_id)
    }
}
