//! What a connection really receives, and the history of devices going online and offline.
//!
//! - `mqtt_connection` gains the state of its subscriptions (as the broker answered them), the
//!   time of its last message, a silence limit and flag, and a discovery filter.
//! - `gateway` and `datalogger` gain why and when their `is_online` was last written, and a
//!   trigger on each records every change of `is_online` as a `device_event` row: the writers,
//!   the offline job and every instance sharing the database are covered alike, and a change
//!   is recorded in the transaction that makes it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000004_connection_truth"
    }
}

/// The event a change of `is_online` leaves: a status message, the offline job, or a message
/// from a device that was offline (`online_cause` says which; `message` when none was written).
const POSTGRES_UP: &[&str] = &[
    "CREATE OR REPLACE FUNCTION mqtt_supervisor_gateway_online_changed() RETURNS trigger \
     LANGUAGE plpgsql AS $$ \
     BEGIN \
       INSERT INTO device_event (site_id, gateway_id, datalogger_id, is_online, cause, at) \
       VALUES (NEW.site_id, NEW.id, NULL, NEW.is_online, COALESCE(NEW.online_cause, 'message'), \
               COALESCE(NEW.online_changed_at, NEW.last_seen, now())); \
       RETURN NULL; \
     END $$",
    "DROP TRIGGER IF EXISTS gateway_online_changed ON gateway",
    "CREATE TRIGGER gateway_online_changed AFTER UPDATE OF is_online ON gateway \
     FOR EACH ROW WHEN (OLD.is_online IS DISTINCT FROM NEW.is_online) \
     EXECUTE FUNCTION mqtt_supervisor_gateway_online_changed()",
    "CREATE OR REPLACE FUNCTION mqtt_supervisor_datalogger_online_changed() RETURNS trigger \
     LANGUAGE plpgsql AS $$ \
     BEGIN \
       INSERT INTO device_event (site_id, gateway_id, datalogger_id, is_online, cause, at) \
       SELECT gateway.site_id, NEW.gateway_id, NEW.id, NEW.is_online, \
              COALESCE(NEW.online_cause, 'message'), \
              COALESCE(NEW.online_changed_at, NEW.last_seen, now()) \
         FROM gateway WHERE gateway.id = NEW.gateway_id; \
       RETURN NULL; \
     END $$",
    "DROP TRIGGER IF EXISTS datalogger_online_changed ON datalogger",
    "CREATE TRIGGER datalogger_online_changed AFTER UPDATE OF is_online ON datalogger \
     FOR EACH ROW WHEN (OLD.is_online IS DISTINCT FROM NEW.is_online) \
     EXECUTE FUNCTION mqtt_supervisor_datalogger_online_changed()",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS gateway_online_changed ON gateway",
    "DROP TRIGGER IF EXISTS datalogger_online_changed ON datalogger",
    "DROP FUNCTION IF EXISTS mqtt_supervisor_gateway_online_changed()",
    "DROP FUNCTION IF EXISTS mqtt_supervisor_datalogger_online_changed()",
];

/// SQLite's triggers hold their statements inline. Its upsert fires update triggers too.
const SQLITE_UP: &[&str] = &[
    "CREATE TRIGGER IF NOT EXISTS gateway_online_changed AFTER UPDATE OF is_online ON gateway \
     WHEN OLD.is_online IS NOT NEW.is_online \
     BEGIN \
       INSERT INTO device_event (site_id, gateway_id, datalogger_id, is_online, cause, at) \
       VALUES (NEW.site_id, NEW.id, NULL, NEW.is_online, COALESCE(NEW.online_cause, 'message'), \
               COALESCE(NEW.online_changed_at, NEW.last_seen, \
                        strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))); \
     END",
    "CREATE TRIGGER IF NOT EXISTS datalogger_online_changed AFTER UPDATE OF is_online ON datalogger \
     WHEN OLD.is_online IS NOT NEW.is_online \
     BEGIN \
       INSERT INTO device_event (site_id, gateway_id, datalogger_id, is_online, cause, at) \
       SELECT gateway.site_id, NEW.gateway_id, NEW.id, NEW.is_online, \
              COALESCE(NEW.online_cause, 'message'), \
              COALESCE(NEW.online_changed_at, NEW.last_seen, \
                       strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')) \
         FROM gateway WHERE gateway.id = NEW.gateway_id; \
     END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS gateway_online_changed",
    "DROP TRIGGER IF EXISTS datalogger_online_changed",
];

async fn run_for_backend(
    manager: &SchemaManager<'_>,
    postgres: &[&str],
    sqlite: &[&str],
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let statements = match db.get_database_backend() {
        DbBackend::Postgres => postgres,
        DbBackend::Sqlite => sqlite,
        _ => &[],
    };
    for statement in statements {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}

/// One column per statement: SQLite alters a table one change at a time.
async fn add_column(
    manager: &SchemaManager<'_>,
    table: impl IntoIden + Copy + 'static,
    column: ColumnDef,
) -> Result<(), DbErr> {
    let mut column = column;
    manager
        .alter_table(
            Table::alter()
                .table(table)
                .add_column(&mut column)
                .to_owned(),
        )
        .await
}

async fn drop_column(
    manager: &SchemaManager<'_>,
    table: impl IntoIden + Copy + 'static,
    column: impl IntoIden + 'static,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).drop_column(column).to_owned())
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use MqttConnection as C;
        add_column(manager, C::Table, json_null(C::Subscriptions)).await?;
        add_column(
            manager,
            C::Table,
            timestamp_with_time_zone_null(C::LastMessageAt),
        )
        .await?;
        add_column(manager, C::Table, integer_null(C::MaxSilenceSecs)).await?;
        add_column(
            manager,
            C::Table,
            boolean(C::Silent).default(false).to_owned(),
        )
        .await?;
        add_column(manager, C::Table, string_null(C::DiscoveryFilter)).await?;
        for table in [Device::Gateway, Device::Datalogger] {
            add_column(manager, table, string_null(Device::OnlineCause)).await?;
            add_column(
                manager,
                table,
                timestamp_with_time_zone_null(Device::OnlineChangedAt),
            )
            .await?;
        }
        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(DeviceEvent::Table)
                    .col(pk_auto(DeviceEvent::Id))
                    .col(integer(DeviceEvent::SiteId))
                    .col(integer(DeviceEvent::GatewayId))
                    .col(integer_null(DeviceEvent::DataloggerId))
                    .col(boolean(DeviceEvent::IsOnline))
                    .col(string(DeviceEvent::Cause))
                    .col(timestamp_with_time_zone(DeviceEvent::At))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DeviceEvent::Table, DeviceEvent::SiteId)
                            .to(Site::Table, Site::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DeviceEvent::Table, DeviceEvent::GatewayId)
                            .to(Device::Gateway, Device::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DeviceEvent::Table, DeviceEvent::DataloggerId)
                            .to(Device::Datalogger, Device::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_device_event_site_at")
                    .table(DeviceEvent::Table)
                    .col(DeviceEvent::SiteId)
                    .col(DeviceEvent::At)
                    .to_owned(),
            )
            .await?;
        run_for_backend(manager, POSTGRES_UP, SQLITE_UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_for_backend(manager, POSTGRES_DOWN, SQLITE_DOWN).await?;
        manager
            .drop_table(
                Table::drop()
                    .if_exists()
                    .table(DeviceEvent::Table)
                    .to_owned(),
            )
            .await?;
        for table in [Device::Gateway, Device::Datalogger] {
            drop_column(manager, table, Device::OnlineChangedAt).await?;
            drop_column(manager, table, Device::OnlineCause).await?;
        }
        use MqttConnection as C;
        for column in [
            C::DiscoveryFilter,
            C::Silent,
            C::MaxSilenceSecs,
            C::LastMessageAt,
            C::Subscriptions,
        ] {
            drop_column(manager, C::Table, column).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum MqttConnection {
    Table,
    Subscriptions,
    LastMessageAt,
    MaxSilenceSecs,
    Silent,
    DiscoveryFilter,
}

/// The columns gateways and dataloggers gain alike.
#[derive(DeriveIden, Clone, Copy)]
enum Device {
    Gateway,
    Datalogger,
    Id,
    OnlineCause,
    OnlineChangedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Site {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum DeviceEvent {
    Table,
    Id,
    SiteId,
    GatewayId,
    DataloggerId,
    IsOnline,
    Cause,
    At,
}
