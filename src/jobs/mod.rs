//! Scheduled jobs (tokio-cron-scheduler), one file each: offline detection and retention. Each
//! run's outcome is kept on a board that `/health` shows.

mod board;
mod offline;
mod retention;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

pub use board::{JobBoard, JobStatus};
pub use offline::mark_offline;
pub use retention::purge;

use crate::config::JobsConfig;
use crate::events::Hub;

/// What the jobs need.
#[derive(Clone)]
pub struct JobsContext {
    pub db: DatabaseConnection,
    pub hub: Hub,
    pub config: JobsConfig,
    /// Where each run's outcome is kept.
    pub board: JobBoard,
}

pub struct Jobs {
    scheduler: JobScheduler,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot schedule job {name} with cron '{schedule}': {source}")]
pub struct ScheduleError {
    name: &'static str,
    schedule: String,
    source: JobSchedulerError,
}

type JobFuture = Pin<Box<dyn Future<Output = Result<String, sea_orm::DbErr>> + Send>>;

pub async fn start(context: JobsContext) -> Result<Jobs, ScheduleError> {
    let scheduler = JobScheduler::new().await.map_err(|source| ScheduleError {
        name: "scheduler",
        schedule: String::new(),
        source,
    })?;
    let offline = context.clone();
    add(
        &scheduler,
        &context.board,
        "offline_detection",
        context.config.offline_check_cron.clone(),
        Arc::new(move || -> JobFuture {
            let context = offline.clone();
            Box::pin(async move {
                mark_offline(&context.db, &context.hub, context.config.offline_after_secs).await
            })
        }),
    )
    .await?;
    let retention = context.clone();
    add(
        &scheduler,
        &context.board,
        "retention_purge",
        context.config.retention_cron.clone(),
        Arc::new(move || -> JobFuture {
            let context = retention.clone();
            Box::pin(async move { purge(&context.db, &context.config).await })
        }),
    )
    .await?;
    scheduler.start().await.map_err(|source| ScheduleError {
        name: "scheduler",
        schedule: String::new(),
        source,
    })?;
    Ok(Jobs { scheduler })
}

async fn add(
    scheduler: &JobScheduler,
    board: &JobBoard,
    name: &'static str,
    schedule: String,
    work: Arc<dyn Fn() -> JobFuture + Send + Sync>,
) -> Result<(), ScheduleError> {
    let board = board.clone();
    board.register(name, &schedule);
    let job = Job::new_async(schedule.as_str(), move |_, _| {
        let board = board.clone();
        let work = work.clone();
        Box::pin(async move {
            let outcome = work().await;
            match &outcome {
                Ok(summary) => tracing::debug!(job = name, summary, "job ran"),
                Err(error) => tracing::error!(job = name, %error, "job failed"),
            }
            board.record(name, outcome.map_err(|error| error.to_string()));
        })
    })
    .map_err(|source| ScheduleError {
        name,
        schedule: schedule.clone(),
        source,
    })?;
    scheduler.add(job).await.map_err(|source| ScheduleError {
        name,
        schedule,
        source,
    })?;
    Ok(())
}

pub async fn stop(mut jobs: Jobs) {
    let _ = jobs.scheduler.shutdown().await;
}
