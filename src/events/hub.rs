//! The broadcast side: events are serialised once and shared by every client. With several
//! instances, a relay (see `cluster::relay`) takes this instance's events to the others, and
//! theirs arrive here marked as remote, so they are never sent back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast, Notify};

use super::Event;

/// An event ready to send: its site for filtering and its JSON text.
#[derive(Debug)]
pub struct Published {
    pub site_id: i32,
    pub json: String,
    /// It came from another instance.
    pub remote: bool,
}

/// Cloneable handle; `send` never waits. A client that falls more than the channel's capacity
/// behind sees `Lagged` and is dropped by its session.
#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Published>>,
    /// The relay to other instances is one of the receivers.
    relay_attached: Arc<AtomicBool>,
    /// Another instance has browsers that want this instance's events.
    remote_watchers: Arc<AtomicBool>,
    /// A browser subscribed: the instance list should learn it soon.
    clients_changed: Arc<Notify>,
}

impl Hub {
    pub fn new(capacity: usize) -> Hub {
        let (sender, _) = broadcast::channel(capacity);
        Hub {
            sender,
            relay_attached: Arc::new(AtomicBool::new(false)),
            remote_watchers: Arc::new(AtomicBool::new(false)),
            clients_changed: Arc::new(Notify::new()),
        }
    }

    pub fn send(&self, event: &Event) {
        // Nobody listening is the normal state when no page is open anywhere.
        if self.client_count() == 0 {
            return;
        }
        match serde_json::to_string(event) {
            Ok(json) => {
                let _ = self.sender.send(Arc::new(Published {
                    site_id: event.site_id(),
                    json,
                    remote: false,
                }));
            }
            Err(error) => tracing::error!(%error, "cannot serialise a WebSocket event"),
        }
    }

    /// An event another instance published, for this instance's browsers only.
    pub fn send_remote(&self, site_id: i32, json: String) {
        if self.local_client_count() == 0 {
            return;
        }
        let _ = self.sender.send(Arc::new(Published {
            site_id,
            json,
            remote: true,
        }));
    }

    /// For a browser session.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        let receiver = self.sender.subscribe();
        self.clients_changed.notify_one();
        receiver
    }

    /// For the relay to other instances; it does not count as a browser.
    pub fn subscribe_relay(&self) -> broadcast::Receiver<Arc<Published>> {
        let receiver = self.sender.subscribe();
        self.relay_attached.store(true, Ordering::Release);
        receiver
    }

    /// Browsers of this instance.
    pub fn local_client_count(&self) -> usize {
        let relay = usize::from(self.relay_attached.load(Ordering::Acquire));
        self.sender.receiver_count().saturating_sub(relay)
    }

    /// Whoever hears this instance's events: its browsers, and another instance's if any.
    pub fn client_count(&self) -> usize {
        self.local_client_count() + usize::from(self.remote_watchers())
    }

    pub fn remote_watchers(&self) -> bool {
        self.relay_attached.load(Ordering::Acquire) && self.remote_watchers.load(Ordering::Acquire)
    }

    pub fn set_remote_watchers(&self, watching: bool) {
        self.remote_watchers.store(watching, Ordering::Release);
    }

    /// Notified when a browser subscribes.
    pub fn clients_changed(&self) -> Arc<Notify> {
        self.clients_changed.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_subscribers_as_tagged_json() {
        let hub = Hub::new(8);
        let mut receiver = hub.subscribe();
        hub.send(&Event::TopicDiscovered {
            site_id: 7,
            topic: "a/b".into(),
        });
        let published = receiver.recv().await.expect("event");
        assert_eq!(published.site_id, 7);
        let value: serde_json::Value = serde_json::from_str(&published.json).expect("json");
        assert_eq!(value["type"], "topic_discovered");
        assert_eq!(value["topic"], "a/b");
    }

    #[tokio::test]
    async fn the_relay_is_no_browser_and_hears_only_when_another_instance_watches() {
        let hub = Hub::new(8);
        let mut relay = hub.subscribe_relay();
        assert_eq!(hub.client_count(), 0);
        hub.send(&Event::TopicDiscovered {
            site_id: 1,
            topic: "a".into(),
        });
        assert!(
            relay.try_recv().is_err(),
            "nobody watches anywhere: nothing is built"
        );
        hub.set_remote_watchers(true);
        assert_eq!(hub.client_count(), 1);
        hub.send(&Event::TopicDiscovered {
            site_id: 1,
            topic: "b".into(),
        });
        assert!(!relay.try_recv().expect("relayed").remote);
        let mut browser = hub.subscribe();
        assert_eq!(hub.local_client_count(), 1);
        hub.send_remote(2, "{}".into());
        assert!(browser.try_recv().expect("remote event").remote);
    }

    #[tokio::test]
    async fn a_lagging_receiver_is_told_so_and_the_sender_never_blocks() {
        let hub = Hub::new(4);
        let mut receiver = hub.subscribe();
        for index in 0..100 {
            hub.send(&Event::TopicDiscovered {
                site_id: 1,
                topic: format!("t/{index}"),
            });
        }
        assert!(matches!(
            receiver.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
