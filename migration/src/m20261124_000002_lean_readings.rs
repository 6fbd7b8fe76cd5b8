//! Makes storing a reading cheaper on PostgreSQL, where the ingest rate is decided.
//!
//! - The foreign key from `sensor_reading` to `sensor` checked every inserted row with a lookup
//!   and a row lock on the sensor. The writer now locks the batch's sites once per transaction
//!   instead (`pipeline/persist.rs`), and a trigger on `sensor` keeps the cascade: deleting a
//!   sensor (or its site, gateway or datalogger) still deletes its readings.
//! - The time index only serves retention (`ts < cutoff`) and readings arrive roughly in time
//!   order, so a BRIN index does that job at a fraction of a b-tree's cost per row.
//!
//! SQLite keeps the foreign key and the b-tree: it has one writer and its checks are cheap.

use sea_orm_migration::prelude::*;

use crate::postgres_only::run;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000002_lean_readings"
    }
}

const UP: &[&str] = &[
    "ALTER TABLE sensor_reading DROP CONSTRAINT IF EXISTS sensor_reading_sensor_id_fkey",
    "CREATE OR REPLACE FUNCTION mqtt_supervisor_delete_readings_of_sensors() RETURNS trigger \
     LANGUAGE plpgsql AS $$ \
     BEGIN \
       DELETE FROM sensor_reading USING deleted_sensors \
        WHERE sensor_reading.sensor_id = deleted_sensors.id; \
       RETURN NULL; \
     END $$",
    "DROP TRIGGER IF EXISTS sensor_delete_readings ON sensor",
    "CREATE TRIGGER sensor_delete_readings AFTER DELETE ON sensor \
     REFERENCING OLD TABLE AS deleted_sensors \
     FOR EACH STATEMENT EXECUTE FUNCTION mqtt_supervisor_delete_readings_of_sensors()",
    "DROP INDEX IF EXISTS idx_sensor_reading_ts",
    "CREATE INDEX IF NOT EXISTS idx_sensor_reading_ts ON sensor_reading USING brin (ts)",
];

const DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS sensor_delete_readings ON sensor",
    "DROP FUNCTION IF EXISTS mqtt_supervisor_delete_readings_of_sensors()",
    // Readings left behind by a write that raced a deletion would block the constraint.
    "DELETE FROM sensor_reading WHERE NOT EXISTS \
     (SELECT 1 FROM sensor WHERE sensor.id = sensor_reading.sensor_id)",
    "ALTER TABLE sensor_reading ADD CONSTRAINT sensor_reading_sensor_id_fkey \
     FOREIGN KEY (sensor_id) REFERENCES sensor (id) ON DELETE CASCADE",
    "DROP INDEX IF EXISTS idx_sensor_reading_ts",
    "CREATE INDEX IF NOT EXISTS idx_sensor_reading_ts ON sensor_reading (ts)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, DOWN).await
    }
}
