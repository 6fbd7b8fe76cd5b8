//! Drops the time index of `sensor_reading` on PostgreSQL, where the ingest rate is decided.
//!
//! The BRIN index on `ts` served only the retention job. Every stored reading paid for it (about
//! 0.4 µs of the server's CPU per row, a tenth of the row's cost), while retention can reach old
//! rows through the primary key (sensor, time) one sensor at a time instead
//! (`jobs/retention.rs`). Every query of the API reads one sensor's readings, which the primary
//! key serves.
//!
//! SQLite keeps its b-tree on `ts`: it has one writer and retention deletes by time there.

use sea_orm_migration::prelude::*;

use crate::postgres_only::run;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000003_readings_without_time_index"
    }
}

const UP: &[&str] = &["DROP INDEX IF EXISTS idx_sensor_reading_ts"];
const DOWN: &[&str] =
    &["CREATE INDEX IF NOT EXISTS idx_sensor_reading_ts ON sensor_reading USING brin (ts)"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, DOWN).await
    }
}
