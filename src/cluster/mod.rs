//! Several `serve` processes on one PostgreSQL database, with the database as the only
//! coordinator: each instance registers itself and heartbeats (`instance`), owns connection
//! shards through leases it renews in short transactions (`leases`, deciding with the pure
//! `placement`), stops its clients before a lease it cannot renew runs out, and hears the others
//! through LISTEN/NOTIFY (`notify`): wake-ups after API changes, lease hand-overs and the events
//! browsers on another instance should see (`relay`). On SQLite one instance runs everything and
//! a second one is refused (`single`).

mod instance;
mod leases;
mod notify;
pub mod placement;
mod relay;
mod single;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};

pub use instance::{list_instances, InstanceInfo};
pub use leases::{run as run_leases, LeaseContext};
pub use notify::{listen, Notifier};
pub use placement::ShardKey;
pub use relay::run as run_relay;
pub use single::{hold_single_instance, SingleInstanceError, SingleInstanceGuard};

/// Which shards this instance may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// All of them: the only instance (SQLite).
    Everything,
    /// Those it holds leases for (none while it cannot renew them).
    Only(BTreeSet<ShardKey>),
}

impl Allowed {
    pub fn contains(&self, key: &ShardKey) -> bool {
        match self {
            Allowed::Everything => true,
            Allowed::Only(keys) => keys.contains(key),
        }
    }
}

/// One shard's lease as the last lease round saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOwner {
    pub shard: i32,
    pub owner: Option<String>,
    pub status: String,
    pub last_error: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The leases of every connection, by connection id, as the last lease round read them.
#[derive(Clone, Default)]
pub struct LeaseView {
    by_connection: Arc<RwLock<BTreeMap<i32, Vec<ShardOwner>>>>,
}

impl LeaseView {
    pub fn of(&self, connection_id: i32) -> Vec<ShardOwner> {
        self.by_connection
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&connection_id)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn replace(&self, leases: BTreeMap<i32, Vec<ShardOwner>>) {
        *self
            .by_connection
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = leases;
    }
}

/// What the rest of the service holds on the cluster.
#[derive(Clone)]
pub struct ClusterHandle {
    pub instance_id: Arc<str>,
    pub lease: Duration,
    /// Whether other instances may share the database (PostgreSQL).
    pub shared: bool,
    pub allowed: watch::Receiver<Allowed>,
    pub leases: LeaseView,
    pub notifier: Notifier,
    /// Wakes the lease round at once (a shard stopped, a browser connected).
    pub wake_leases: Arc<Notify>,
}

/// The lease manager's side of the handle: where it publishes what may run.
pub struct ClusterControl {
    pub allowed: watch::Sender<Allowed>,
}

impl ClusterHandle {
    pub fn new(
        instance_id: String,
        lease: Duration,
        shared: bool,
        notifier: Notifier,
    ) -> (ClusterHandle, ClusterControl) {
        let initial = if shared {
            Allowed::Only(BTreeSet::new())
        } else {
            Allowed::Everything
        };
        let (sender, receiver) = watch::channel(initial);
        (
            ClusterHandle {
                instance_id: instance_id.into(),
                lease,
                shared,
                allowed: receiver,
                leases: LeaseView::default(),
                notifier,
                wake_leases: Arc::new(Notify::new()),
            },
            ClusterControl { allowed: sender },
        )
    }

    /// The owner of a connection's first shard, the one its JSON names.
    pub fn owner_of(&self, connection_id: i32) -> Option<String> {
        if !self.shared {
            return None;
        }
        self.leases
            .of(connection_id)
            .into_iter()
            .find(|lease| lease.shard == 0)
            .and_then(|lease| lease.owner)
    }
}
