//! The reconcile loop: keeps the running MQTT clients equal to the active connections in the
//! database, every `reconcile_secs` and at once when woken by a change.

mod desired;
mod diff;
mod handle;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use diff::{plan, Action, DesiredClient, RunningView};
pub use handle::SupervisorHandle;

use crate::cluster::{Allowed, ShardKey};
use crate::connection::{self, ClientHandle, ConnectionContext, ConnectionSettings, LiveSettings};
use crate::downlink::{self, CommandReport};
use crate::metrics::Metrics;
use crate::secrets::Secrets;
use crate::telemetry::CONNECTION_TARGET;
use desired::ClientKey;

/// What the reconcile loop needs.
pub struct SupervisorContext {
    pub db: DatabaseConnection,
    pub handle: SupervisorHandle,
    pub metrics: Arc<Metrics>,
    pub reconcile_every: Duration,
    /// Handed to every connection it starts.
    pub connections: ConnectionContext,
    /// The shards this instance may run (its leases), from the lease manager.
    pub allowed: watch::Receiver<Allowed>,
    /// The shards it runs, after every pass: the lease manager gives a lease back only once its
    /// shard is no longer here.
    pub running: watch::Sender<BTreeSet<ShardKey>>,
    pub shutdown: CancellationToken,
    /// Opens the stored broker passwords.
    pub secrets: Secrets,
}

struct RunningClient {
    settings: ConnectionSettings,
    live: LiveSettings,
    handle: ClientHandle,
}

/// Runs until the shutdown token fires, then stops every client and waits for them.
pub async fn run(context: SupervisorContext) {
    if let Err(error) = desired::reset_statuses(&context.db, context.handle.cluster().shared).await
    {
        tracing::warn!(target: CONNECTION_TARGET, %error, "cannot reset stale connection statuses");
    }
    let mut running: BTreeMap<ClientKey, RunningClient> = BTreeMap::new();
    let mut allowed_changes = context.allowed.clone();
    let mut ticker = tokio::time::interval(context.reconcile_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = context.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
            _ = context.handle.woken() => {}
            changed = allowed_changes.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
        let started = Instant::now();
        // Clients this instance may no longer run stop first, whatever the database does: a
        // lease it cannot renew must not outlive its client.
        let allowed = context.allowed.borrow().clone();
        stop(&mut running, |key, client| {
            !allowed.contains(&shard_key(key, client))
        })
        .await;
        let outcome = reconcile(&context, &allowed, &mut running).await;
        publish_running(&context, &running);
        expire_commands(&context).await;
        context
            .metrics
            .reconcile_seconds
            .observe(started.elapsed().as_secs_f64());
        context.metrics.running_clients.set(running.len() as i64);
        match outcome {
            Ok(actions) if actions > 0 => tracing::info!(
                target: CONNECTION_TARGET,
                actions,
                running = running.len(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "reconciled"
            ),
            Ok(_) => tracing::debug!(
                running = running.len(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "reconciled, nothing to do"
            ),
            Err(error) => {
                tracing::warn!(target: CONNECTION_TARGET, %error, "reconcile pass failed; running clients are kept as they are")
            }
        }
    }
    stop(&mut running, |_, _| true).await;
    publish_running(&context, &running);
}

/// Commands whose time ran out while no connection could send them (a stopped one, a broker
/// away) end `expired`; a running connection does the same for its own as it sends.
///
/// Commands their devices did not confirm in time end `failed`; what this process waits for is
/// read again, so a command stored by another instance is confirmed here too.
async fn expire_commands(context: &SupervisorContext) {
    let report = CommandReport {
        hub: context.connections.hub.clone(),
        metrics: context.metrics.clone(),
    };
    let now = chrono::Utc::now();
    let ended = match downlink::expire_overdue(&context.db, now).await {
        Ok(mut ended) => downlink::fail_unconfirmed(&context.db, now)
            .await
            .map(|mut failed| {
                ended.append(&mut failed);
                ended
            }),
        Err(error) => Err(error),
    };
    match ended {
        Ok(ended) => {
            for command in &ended {
                report.told(command);
            }
        }
        Err(error) => {
            tracing::warn!(target: CONNECTION_TARGET, %error, "cannot expire overdue commands")
        }
    }
    let replies = &context.connections.replies;
    if let Err(error) = downlink::reload_replies(replies, &context.db, None).await {
        tracing::warn!(target: CONNECTION_TARGET, %error, "cannot load the replies awaited for commands")
    }
}

fn shard_key(key: &ClientKey, client: &RunningClient) -> ShardKey {
    (client.settings.connection_id, key.1)
}

fn publish_running(context: &SupervisorContext, running: &BTreeMap<ClientKey, RunningClient>) {
    let keys: BTreeSet<ShardKey> = running
        .iter()
        .map(|(key, client)| shard_key(key, client))
        .collect();
    context.running.send_if_modified(|current| {
        let changed = *current != keys;
        *current = keys;
        changed
    });
}

/// Stops (all at once) the clients `which` picks, and waits for them.
async fn stop(
    running: &mut BTreeMap<ClientKey, RunningClient>,
    which: impl Fn(&ClientKey, &RunningClient) -> bool,
) {
    let keys: Vec<ClientKey> = running
        .iter()
        .filter(|(key, client)| which(key, client))
        .map(|(key, _)| *key)
        .collect();
    let mut stopping = Vec::new();
    for key in keys {
        if let Some(client) = running.remove(&key) {
            client.handle.cancel.cancel();
            stopping.push(client.handle.task);
        }
    }
    for task in stopping {
        let _ = task.await;
    }
}

/// One pass; returns how many actions it took.
async fn reconcile(
    context: &SupervisorContext,
    allowed: &Allowed,
    running: &mut BTreeMap<ClientKey, RunningClient>,
) -> Result<usize, sea_orm::DbErr> {
    let mut desired = desired::load(&context.db, &context.secrets).await?;
    desired.retain(|(_, shard), wanted| allowed.contains(&(wanted.settings.connection_id, *shard)));
    let actions = {
        let views: BTreeMap<ClientKey, RunningView<'_>> = running
            .iter()
            .map(|(key, client)| {
                (
                    *key,
                    RunningView {
                        settings: &client.settings,
                        live: &client.live,
                        finished: client.handle.task.is_finished(),
                    },
                )
            })
            .collect();
        plan(&desired, &views)
    };
    // Stops first and all at once, so a stop-everything change takes one disconnect, not N.
    let stopping: BTreeSet<ClientKey> = actions
        .iter()
        .filter_map(|action| match action {
            Action::Stop(key) | Action::Restart(key) => Some(*key),
            _ => None,
        })
        .collect();
    stop(running, |key, _| stopping.contains(key)).await;
    for action in &actions {
        match action {
            Action::Start(key) | Action::Restart(key) => {
                if let Some(wanted) = desired.get(key) {
                    let handle = connection::spawn(
                        context.connections.clone(),
                        key.0,
                        wanted.settings.clone(),
                        wanted.live.clone(),
                        &context.shutdown,
                    );
                    running.insert(
                        *key,
                        RunningClient {
                            settings: wanted.settings.clone(),
                            live: wanted.live.clone(),
                            handle,
                        },
                    );
                }
            }
            Action::UpdateTopics(key) => {
                if let (Some(wanted), Some(client)) = (desired.get(key), running.get_mut(key)) {
                    let _ = client
                        .handle
                        .live_settings
                        .send(Arc::new(wanted.live.clone()));
                    client.live = wanted.live.clone();
                    tracing::info!(target: CONNECTION_TARGET, site_id = key.0, shard = key.1, patterns = wanted.live.topics.len(), "topic patterns, discovery filter or silence limit changed; re-subscribing");
                }
            }
            Action::Stop(_) => {}
        }
    }
    Ok(actions.len())
}
