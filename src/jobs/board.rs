//! What each job did last, for `/health`.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub name: String,
    pub schedule: String,
    pub last_run: Option<DateTime<Utc>>,
    pub last_result: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Clone, Default)]
pub struct JobBoard {
    jobs: Arc<RwLock<Vec<JobStatus>>>,
}

impl JobBoard {
    pub fn register(&self, name: &str, schedule: &str) {
        let mut jobs = match self.jobs.write() {
            Ok(jobs) => jobs,
            Err(poisoned) => poisoned.into_inner(),
        };
        jobs.retain(|job| job.name != name);
        jobs.push(JobStatus {
            name: name.to_string(),
            schedule: schedule.to_string(),
            last_run: None,
            last_result: None,
            last_error: None,
        });
    }

    pub fn record(&self, name: &str, outcome: Result<String, String>) {
        let mut jobs = match self.jobs.write() {
            Ok(jobs) => jobs,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(job) = jobs.iter_mut().find(|job| job.name == name) {
            job.last_run = Some(Utc::now());
            match outcome {
                Ok(summary) => {
                    job.last_result = Some(summary);
                    job.last_error = None;
                }
                Err(error) => job.last_error = Some(error),
            }
        }
    }

    pub fn list(&self) -> Vec<JobStatus> {
        match self.jobs.read() {
            Ok(jobs) => jobs.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}
