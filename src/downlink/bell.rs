//! What wakes a connection when a command for its site is stored: one `Notify` per site, rung by
//! the API (and, through the cluster's notifications, by other instances' APIs). A ring while
//! the connection is busy is kept until it looks again, so none is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct CommandBell {
    by_site: Arc<Mutex<HashMap<i32, Arc<Notify>>>>,
}

impl CommandBell {
    /// The bell of one site, made on first use.
    pub fn of_site(&self, site_id: i32) -> Arc<Notify> {
        // A poisoned lock still holds a usable map.
        let mut by_site = self
            .by_site
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        by_site.entry(site_id).or_default().clone()
    }

    pub fn ring(&self, site_id: i32) {
        self.of_site(site_id).notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ring_before_anyone_listens_is_kept() {
        let bell = CommandBell::default();
        bell.ring(7);
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            bell.of_site(7).notified(),
        )
        .await
        .expect("the ring was kept");
    }
}
