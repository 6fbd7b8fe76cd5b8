//! The reconcile loop: keeps the running MQTT clients equal to the active connections in the
//! database, every `reconcile_secs` and at once when woken by a change.

mod desired;
mod diff;
mod handle;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

pub use diff::{plan, Action, DesiredClient, RunningView};
pub use handle::SupervisorHandle;

use crate::connection::{self, ClientHandle, ConnectionContext, ConnectionSettings, LiveSettings};
use crate::metrics::Metrics;
use crate::telemetry::CONNECTION_TARGET;

/// What the reconcile loop needs.
pub struct SupervisorContext {
    pub db: DatabaseConnection,
    pub handle: SupervisorHandle,
    pub metrics: Arc<Metrics>,
    pub reconcile_every: Duration,
    /// Handed to every connection it starts.
    pub connections: ConnectionContext,
    pub shutdown: CancellationToken,
}

struct RunningClient {
    settings: ConnectionSettings,
    live: LiveSettings,
    handle: ClientHandle,
}

/// Runs until the shutdown token fires, then stops every client and waits for them.
pub async fn run(context: SupervisorContext) {
    if let Err(error) = desired::reset_statuses(&context.db).await {
        tracing::warn!(target: CONNECTION_TARGET, %error, "cannot reset stale connection statuses");
    }
    let mut running: BTreeMap<i32, RunningClient> = BTreeMap::new();
    let mut ticker = tokio::time::interval(context.reconcile_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = context.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
            _ = context.handle.woken() => {}
        }
        let started = Instant::now();
        let outcome = reconcile(&context, &mut running).await;
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
    stop_all(running).await;
}

/// One pass; returns how many actions it took.
async fn reconcile(
    context: &SupervisorContext,
    running: &mut BTreeMap<i32, RunningClient>,
) -> Result<usize, sea_orm::DbErr> {
    let desired = desired::load(&context.db).await?;
    let actions = {
        let views: BTreeMap<i32, RunningView<'_>> = running
            .iter()
            .map(|(site_id, client)| {
                (
                    *site_id,
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
    let mut stopping = Vec::new();
    for action in &actions {
        if let Action::Stop(site_id) | Action::Restart(site_id) = action {
            if let Some(client) = running.remove(site_id) {
                client.handle.cancel.cancel();
                stopping.push(client.handle.task);
            }
        }
    }
    for task in stopping {
        let _ = task.await;
    }
    for action in &actions {
        match action {
            Action::Start(site_id) | Action::Restart(site_id) => {
                if let Some(wanted) = desired.get(site_id) {
                    let handle = connection::spawn(
                        context.connections.clone(),
                        *site_id,
                        wanted.settings.clone(),
                        wanted.live.clone(),
                        &context.shutdown,
                    );
                    running.insert(
                        *site_id,
                        RunningClient {
                            settings: wanted.settings.clone(),
                            live: wanted.live.clone(),
                            handle,
                        },
                    );
                }
            }
            Action::UpdateTopics(site_id) => {
                if let (Some(wanted), Some(client)) =
                    (desired.get(site_id), running.get_mut(site_id))
                {
                    let _ = client
                        .handle
                        .live_settings
                        .send(Arc::new(wanted.live.clone()));
                    client.live = wanted.live.clone();
                    tracing::info!(target: CONNECTION_TARGET, site_id, patterns = wanted.live.topics.len(), "topic patterns, discovery filter or silence limit changed; re-subscribing");
                }
            }
            Action::Stop(_) => {}
        }
    }
    Ok(actions.len())
}

async fn stop_all(running: BTreeMap<i32, RunningClient>) {
    let tasks: Vec<_> = running
        .into_values()
        .map(|client| {
            client.handle.cancel.cancel();
            client.handle.task
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}
