//! Statements that only PostgreSQL runs: schema tuning for the ingest rate that SQLite, with one
//! writer, does not need.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Runs `statements` in order on PostgreSQL; on any other database does nothing.
pub(crate) async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    for statement in statements {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}
