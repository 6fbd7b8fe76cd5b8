//! Events for browsers on other instances: this instance's events go out as notifications (in
//! bunches, while some other instance has browsers), and theirs come in through `notify::listen`
//! and are handed to the local hub as remote, so they are never sent back. A bunch that does not
//! fit a notification's 8 000 bytes travels by reference: it is stored in `event_relay` and the
//! notification names its row.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::Notifier;
use crate::entity::event_relay;
use crate::events::Hub;

/// PostgreSQL refuses notification payloads from 8 000 bytes on; keep well under.
const MAX_NOTIFICATION_BYTES: usize = 7_000;
/// Events gathered into one notification at most this long.
const LINGER: Duration = Duration::from_millis(20);

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Bunch {
    /// The instance that published them.
    #[serde(rename = "o")]
    origin: String,
    /// (site id, event JSON)
    #[serde(rename = "e", default)]
    events: Vec<(i32, String)>,
    /// The `event_relay` row holding the bunch instead.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    reference: Option<i32>,
}

/// Forwards this instance's events until shutdown.
pub async fn run(notifier: Notifier, hub: Hub, shutdown: CancellationToken) {
    if notifier.database().is_none() {
        return;
    }
    let mut events = hub.subscribe_relay();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = events.recv() => received,
        };
        let first = match first {
            Ok(published) => published,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "events for other instances were dropped (too many at once)"
                );
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if first.remote || !hub.remote_watchers() {
            continue;
        }
        let mut bunch = vec![(first.site_id, first.json.clone())];
        let deadline = tokio::time::Instant::now() + LINGER;
        while bunch.iter().map(|(_, json)| json.len() + 16).sum::<usize>() < MAX_NOTIFICATION_BYTES
        {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(published)) if !published.remote => {
                    bunch.push((published.site_id, published.json.clone()))
                }
                Ok(Ok(_)) => {}
                Ok(Err(RecvError::Lagged(_))) => {}
                Ok(Err(RecvError::Closed)) | Err(_) => break,
            }
        }
        send(&notifier, bunch).await;
    }
}

async fn send(notifier: &Notifier, events: Vec<(i32, String)>) {
    let bunch = Bunch {
        origin: notifier.instance_id().to_string(),
        events,
        reference: None,
    };
    let Ok(payload) = serde_json::to_string(&bunch) else {
        return;
    };
    if payload.len() <= MAX_NOTIFICATION_BYTES {
        notifier.events(&payload).await;
        return;
    }
    let Some(db) = notifier.database() else {
        return;
    };
    let stored = event_relay::ActiveModel {
        origin: Set(bunch.origin.clone()),
        payload: Set(payload),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await;
    match stored {
        Ok(row) => {
            let reference = Bunch {
                origin: bunch.origin,
                events: Vec::new(),
                reference: Some(row.id),
            };
            if let Ok(payload) = serde_json::to_string(&reference) {
                notifier.events(&payload).await;
            }
        }
        Err(error) => tracing::debug!(%error, "cannot store events for the other instances"),
    }
}

/// One notification from another instance, for the local browsers.
pub(super) async fn receive(
    notifier: &Notifier,
    db: &DatabaseConnection,
    hub: &Hub,
    payload: &str,
) {
    let Ok(mut bunch) = serde_json::from_str::<Bunch>(payload) else {
        return;
    };
    if bunch.origin == notifier.instance_id() || hub.local_client_count() == 0 {
        return;
    }
    if let Some(reference) = bunch.reference {
        let Ok(Some(row)) = event_relay::Entity::find_by_id(reference).one(db).await else {
            return;
        };
        match serde_json::from_str::<Bunch>(&row.payload) {
            Ok(stored) => bunch = stored,
            Err(_) => return,
        }
    }
    for (site_id, json) in bunch.events {
        hub.send_remote(site_id, json);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bunch_reads_back_as_it_was_written() {
        let bunch = Bunch {
            origin: "a-1".into(),
            events: vec![(3, r#"{"type":"topic_discovered","site_id":3}"#.into())],
            reference: None,
        };
        let text = serde_json::to_string(&bunch).expect("json");
        assert!(!text.contains("\"r\""));
        assert_eq!(serde_json::from_str::<Bunch>(&text).expect("read"), bunch);
        let reference: Bunch = serde_json::from_str(r#"{"o": "b", "r": 7}"#).expect("reference");
        assert_eq!(reference.reference, Some(7));
        assert!(reference.events.is_empty());
    }
}
