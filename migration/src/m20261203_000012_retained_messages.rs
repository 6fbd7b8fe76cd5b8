//! Retained messages are old news.
//!
//! - `mqtt_parsing_log` gains `retained`: whether the broker delivered the message from its
//!   retained store, so a replay treats it as the old news it was.
//! - A device that only retained messages have spoken of is stored with `last_seen` NULL and
//!   `is_online` false. Its first live message is its first sighting, and a first sighting is no
//!   transition: the `device_event` triggers now skip a change of `is_online` from a row without
//!   `last_seen`, as nothing is recorded when a device is first inserted online.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000012_retained_messages"
    }
}

/// The triggers' functions stay as `m20261130_000004_connection_truth` made them; only the
/// condition under which they run changes.
fn postgres_triggers(condition: &str) -> Vec<String> {
    vec![
        "DROP TRIGGER IF EXISTS gateway_online_changed ON gateway".into(),
        format!(
            "CREATE TRIGGER gateway_online_changed AFTER UPDATE OF is_online ON gateway \
             FOR EACH ROW WHEN ({condition}) \
             EXECUTE FUNCTION mqtt_supervisor_gateway_online_changed()"
        ),
        "DROP TRIGGER IF EXISTS datalogger_online_changed ON datalogger".into(),
        format!(
            "CREATE TRIGGER datalogger_online_changed AFTER UPDATE OF is_online ON datalogger \
             FOR EACH ROW WHEN ({condition}) \
             EXECUTE FUNCTION mqtt_supervisor_datalogger_online_changed()"
        ),
    ]
}

/// SQLite's triggers hold their statements inline, so they are written out again whole.
fn sqlite_triggers(condition: &str) -> Vec<String> {
    vec![
        "DROP TRIGGER IF EXISTS gateway_online_changed".into(),
        format!(
            "CREATE TRIGGER gateway_online_changed AFTER UPDATE OF is_online ON gateway \
             WHEN {condition} \
             BEGIN \
               INSERT INTO device_event (site_id, gateway_id, datalogger_id, is_online, cause, at) \
               VALUES (NEW.site_id, NEW.id, NULL, NEW.is_online, \
                       COALESCE(NEW.online_cause, 'message'), \
                       COALESCE(NEW.online_changed_at, NEW.last_seen, \
                                strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))); \
             END"
        ),
        "DROP TRIGGER IF EXISTS datalogger_online_changed".into(),
        format!(
            "CREATE TRIGGER datalogger_online_changed AFTER UPDATE OF is_online ON datalogger \
             WHEN {condition} \
             BEGIN \
               INSERT INTO device_event (site_id, gateway_id, datalogger_id, is_online, cause, at) \
               SELECT gateway.site_id, NEW.gateway_id, NEW.id, NEW.is_online, \
                      COALESCE(NEW.online_cause, 'message'), \
                      COALESCE(NEW.online_changed_at, NEW.last_seen, \
                               strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')) \
                 FROM gateway WHERE gateway.id = NEW.gateway_id; \
             END"
        ),
    ]
}

async fn replace_triggers(
    manager: &SchemaManager<'_>,
    first_sighting_too: bool,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let statements = match db.get_database_backend() {
        DbBackend::Postgres => postgres_triggers(if first_sighting_too {
            "OLD.is_online IS DISTINCT FROM NEW.is_online"
        } else {
            "OLD.is_online IS DISTINCT FROM NEW.is_online AND OLD.last_seen IS NOT NULL"
        }),
        DbBackend::Sqlite => sqlite_triggers(if first_sighting_too {
            "OLD.is_online IS NOT NEW.is_online"
        } else {
            "OLD.is_online IS NOT NEW.is_online AND OLD.last_seen IS NOT NULL"
        }),
        _ => Vec::new(),
    };
    // One call, so one pooled connection drops and creates: a SQLite connection reading an older
    // snapshot of the schema would still see the trigger another one had dropped.
    if !statements.is_empty() {
        db.execute_unprepared(&statements.join(";\n")).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut column = boolean(MqttParsingLog::Retained).default(false).to_owned();
        manager
            .alter_table(
                Table::alter()
                    .table(MqttParsingLog::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        replace_triggers(manager, false).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_triggers(manager, true).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MqttParsingLog::Table)
                    .drop_column(MqttParsingLog::Retained)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum MqttParsingLog {
    Table,
    Retained,
}
