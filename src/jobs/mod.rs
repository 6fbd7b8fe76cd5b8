//! Scheduled jobs (tokio-cron-scheduler): offline detection and retention.

use crate::state::AppState;

pub struct Jobs;

pub async fn start(_state: AppState) -> anyhow::Result<Jobs> {
    Ok(Jobs)
}

pub async fn stop(_jobs: Jobs) {}
