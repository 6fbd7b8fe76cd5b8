//! The handle the rest of the service holds on the supervisor: wake it (and the other
//! instances' supervisors), ring a site's connection for a new command, read live statuses and
//! the cluster's leases.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::cluster::ClusterHandle;
use crate::connection::{LiveConnection, LiveConnections};
use crate::downlink::{CommandBell, ReplyWatch};

#[derive(Clone)]
pub struct SupervisorHandle {
    wake: Arc<Notify>,
    live: LiveConnections,
    cluster: ClusterHandle,
    commands: CommandBell,
    replies: ReplyWatch,
}

impl SupervisorHandle {
    pub fn new(cluster: ClusterHandle) -> SupervisorHandle {
        SupervisorHandle {
            wake: Arc::new(Notify::new()),
            live: LiveConnections::default(),
            cluster,
            commands: CommandBell::default(),
            replies: ReplyWatch::default(),
        }
    }

    /// A command for the site was stored: its connection sends it now, here or on the
    /// instance that owns it.
    pub fn command_stored(&self, site_id: i32) {
        self.commands.ring(site_id);
        self.cluster.notifier.command_stored(site_id);
    }

    /// The device replies this process waits for, to confirm commands.
    pub fn reply_watch(&self) -> ReplyWatch {
        self.replies.clone()
    }

    /// What the connection tasks listen to for new commands.
    pub fn command_bell(&self) -> CommandBell {
        self.commands.clone()
    }

    /// Asks for a reconcile pass now instead of at the next tick, here and on every other
    /// instance (the one owning the connection acts). Wakes coalesce: many changes in a burst
    /// cause one pass.
    pub fn wake(&self) {
        self.wake.notify_one();
        self.cluster.notifier.wake_everyone();
    }

    /// What wakes this instance's loop only (for notifications from the others).
    pub fn local_wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn cluster(&self) -> &ClusterHandle {
        &self.cluster
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
