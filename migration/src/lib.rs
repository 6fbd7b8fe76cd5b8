//! Database schema of mqtt-supervisor as sea-orm migrations that run unchanged on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_initial_schema;
mod m20261124_000002_lean_readings;
mod m20261125_000003_readings_without_time_index;
mod m20261130_000004_connection_truth;
mod m20261201_000007_cluster;
mod m20261201_000008_client_certificate_and_will;
mod m20261201_000009_audit_log;
mod m20261202_000010_protocol;
mod m20261202_000011_device_command;
mod m20261203_000012_retained_messages;
mod m20261203_000013_command_confirm;
mod postgres_only;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_initial_schema::Migration),
            Box::new(m20261124_000002_lean_readings::Migration),
            Box::new(m20261125_000003_readings_without_time_index::Migration),
            Box::new(m20261130_000004_connection_truth::Migration),
            Box::new(m20261201_000007_cluster::Migration),
            Box::new(m20261201_000008_client_certificate_and_will::Migration),
            Box::new(m20261201_000009_audit_log::Migration),
            Box::new(m20261202_000010_protocol::Migration),
            Box::new(m20261202_000011_device_command::Migration),
            Box::new(m20261203_000012_retained_messages::Migration),
            Box::new(m20261203_000013_command_confirm::Migration),
        ]
    }
}
