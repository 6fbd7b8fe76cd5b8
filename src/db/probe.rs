//! Whether the database answers, as a background probe last found it. Health endpoints and the
//! API read the answer instead of asking the database themselves, so they answer at once
//! however long the database takes not to answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio_util::sync::CancellationToken;

/// How often the probe asks, and how long it waits for an answer: together they bound how late
/// an outage or a recovery is noticed (a little over a second).
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Clone, Debug)]
pub struct DatabaseProbe {
    reachable: Arc<AtomicBool>,
}

impl DatabaseProbe {
    /// Made right after connecting and migrating: the database answered then.
    pub fn new() -> DatabaseProbe {
        DatabaseProbe {
            reachable: Arc::new(AtomicBool::new(true)),
        }
    }

    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    /// Asks `SELECT 1` every [`PROBE_EVERY`] until shutdown; no answer within
    /// [`PROBE_TIMEOUT`] counts as unreachable.
    pub async fn run(self, db: DatabaseConnection, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(PROBE_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let answered = tokio::time::timeout(PROBE_TIMEOUT, db.execute_unprepared("SELECT 1"))
                .await
                .is_ok_and(|result| result.is_ok());
            let was = self.reachable.swap(answered, Ordering::AcqRel);
            if was != answered {
                if answered {
                    tracing::info!("the database answers again");
                } else {
                    tracing::error!(
                        "the database does not answer within {} ms",
                        PROBE_TIMEOUT.as_millis()
                    );
                }
            }
        }
    }
}

impl Default for DatabaseProbe {
    fn default() -> Self {
        DatabaseProbe::new()
    }
}
