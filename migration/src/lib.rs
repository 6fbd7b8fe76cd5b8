//! Database schema of mqtt-supervisor as sea-orm migrations that run unchanged on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_initial_schema;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261124_000001_initial_schema::Migration)]
    }
}
