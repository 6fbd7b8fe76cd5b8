//! The initial schema: sites, their MQTT connection and topic patterns, what was seen on the wire,
//! the device model (gateway → datalogger → sensor → reading) and the two operator logs.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000001_initial_schema"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(Site::Table)
                    .col(pk_auto(Site::Id))
                    .col(string(Site::Name))
                    .col(string_uniq(Site::Slug))
                    .col(boolean(Site::IsActive).default(true))
                    .col(timestamp_with_time_zone(Site::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(MqttConnection::Table)
                    .col(pk_auto(MqttConnection::Id))
                    .col(integer_uniq(MqttConnection::SiteId))
                    .col(string(MqttConnection::Host))
                    .col(integer(MqttConnection::Port))
                    .col(string_null(MqttConnection::Username))
                    .col(string_null(MqttConnection::Password))
                    .col(string(MqttConnection::ClientId))
                    .col(boolean(MqttConnection::UseTls).default(false))
                    .col(string_null(MqttConnection::CaFile))
                    .col(integer(MqttConnection::KeepaliveSecs).default(30))
                    .col(boolean(MqttConnection::CleanSession).default(false))
                    .col(boolean(MqttConnection::IsActive).default(false))
                    .col(string(MqttConnection::Status).default("stopped"))
                    .col(text_null(MqttConnection::LastError))
                    .col(timestamp_with_time_zone_null(MqttConnection::ConnectedAt))
                    .col(timestamp_with_time_zone(MqttConnection::CreatedAt))
                    .col(timestamp_with_time_zone(MqttConnection::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MqttConnection::Table, MqttConnection::SiteId)
                            .to(Site::Table, Site::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(MqttTopic::Table)
                    .col(pk_auto(MqttTopic::Id))
                    .col(integer(MqttTopic::SiteId))
                    .col(string(MqttTopic::Pattern))
                    .col(string(MqttTopic::Parser))
                    .col(small_integer(MqttTopic::Qos).default(1))
                    .col(boolean(MqttTopic::IsActive).default(true))
                    .col(integer(MqttTopic::Priority).default(0))
                    .col(timestamp_with_time_zone(MqttTopic::CreatedAt))
                    .col(timestamp_with_time_zone(MqttTopic::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MqttTopic::Table, MqttTopic::SiteId)
                            .to(Site::Table, Site::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "idx_mqtt_topic_site",
            MqttTopic::Table,
            &[MqttTopic::SiteId],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(DiscoveredTopic::Table)
                    .col(pk_auto(DiscoveredTopic::Id))
                    .col(integer(DiscoveredTopic::SiteId))
                    .col(string(DiscoveredTopic::Topic))
                    .col(timestamp_with_time_zone(DiscoveredTopic::FirstSeen))
                    .col(timestamp_with_time_zone(DiscoveredTopic::LastSeen))
                    .col(big_integer(DiscoveredTopic::MessageCount).default(0))
                    .col(text_null(DiscoveredTopic::LastPayload))
                    .col(boolean(DiscoveredTopic::IsProcessable).default(false))
                    .col(integer_null(DiscoveredTopic::MqttTopicId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DiscoveredTopic::Table, DiscoveredTopic::SiteId)
                            .to(Site::Table, Site::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DiscoveredTopic::Table, DiscoveredTopic::MqttTopicId)
                            .to(MqttTopic::Table, MqttTopic::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "uq_discovered_topic_site_topic",
            DiscoveredTopic::Table,
            &[DiscoveredTopic::SiteId, DiscoveredTopic::Topic],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(Gateway::Table)
                    .col(pk_auto(Gateway::Id))
                    .col(integer(Gateway::SiteId))
                    .col(string(Gateway::Identifier))
                    .col(string_null(Gateway::Name))
                    .col(timestamp_with_time_zone_null(Gateway::LastSeen))
                    .col(boolean(Gateway::IsOnline).default(false))
                    .col(json_null(Gateway::Metadata))
                    .col(timestamp_with_time_zone(Gateway::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Gateway::Table, Gateway::SiteId)
                            .to(Site::Table, Site::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "uq_gateway_site_identifier",
            Gateway::Table,
            &[Gateway::SiteId, Gateway::Identifier],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(Datalogger::Table)
                    .col(pk_auto(Datalogger::Id))
                    .col(integer(Datalogger::GatewayId))
                    .col(string(Datalogger::Identifier))
                    .col(timestamp_with_time_zone_null(Datalogger::LastSeen))
                    .col(boolean(Datalogger::IsOnline).default(false))
                    .col(json_null(Datalogger::Metadata))
                    .col(timestamp_with_time_zone(Datalogger::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Datalogger::Table, Datalogger::GatewayId)
                            .to(Gateway::Table, Gateway::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "uq_datalogger_gateway_identifier",
            Datalogger::Table,
            &[Datalogger::GatewayId, Datalogger::Identifier],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(Sensor::Table)
                    .col(pk_auto(Sensor::Id))
                    .col(integer(Sensor::DataloggerId))
                    .col(string(Sensor::Name))
                    .col(string_null(Sensor::Unit))
                    .col(double_null(Sensor::LastValue))
                    .col(timestamp_with_time_zone_null(Sensor::LastReadingAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sensor::Table, Sensor::DataloggerId)
                            .to(Datalogger::Table, Datalogger::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "uq_sensor_datalogger_name",
            Sensor::Table,
            &[Sensor::DataloggerId, Sensor::Name],
            true,
        )
        .await?;

        // The composite primary key is what makes a redelivered message harmless.
        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(SensorReading::Table)
                    .col(integer(SensorReading::SensorId))
                    .col(timestamp_with_time_zone(SensorReading::Ts))
                    .col(double(SensorReading::Value))
                    .primary_key(
                        Index::create()
                            .col(SensorReading::SensorId)
                            .col(SensorReading::Ts),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SensorReading::Table, SensorReading::SensorId)
                            .to(Sensor::Table, Sensor::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "idx_sensor_reading_ts",
            SensorReading::Table,
            &[SensorReading::Ts],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(MqttConnectionLog::Table)
                    .col(pk_auto(MqttConnectionLog::Id))
                    .col(integer(MqttConnectionLog::SiteId))
                    .col(string(MqttConnectionLog::Event))
                    .col(text(MqttConnectionLog::Message))
                    .col(timestamp_with_time_zone(MqttConnectionLog::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MqttConnectionLog::Table, MqttConnectionLog::SiteId)
                            .to(Site::Table, Site::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "idx_mqtt_connection_log_site",
            MqttConnectionLog::Table,
            &[MqttConnectionLog::SiteId, MqttConnectionLog::Id],
            false,
        )
        .await?;
        create_index(
            manager,
            "idx_mqtt_connection_log_created",
            MqttConnectionLog::Table,
            &[MqttConnectionLog::CreatedAt],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(MqttParsingLog::Table)
                    .col(pk_auto(MqttParsingLog::Id))
                    .col(integer(MqttParsingLog::SiteId))
                    .col(string(MqttParsingLog::Topic))
                    .col(string_null(MqttParsingLog::Parser))
                    .col(text(MqttParsingLog::Error))
                    .col(blob(MqttParsingLog::Payload))
                    .col(timestamp_with_time_zone(MqttParsingLog::ReceivedAt))
                    .col(timestamp_with_time_zone(MqttParsingLog::CreatedAt))
                    .col(timestamp_with_time_zone_null(MqttParsingLog::ReplayedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MqttParsingLog::Table, MqttParsingLog::SiteId)
                            .to(Site::Table, Site::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "idx_mqtt_parsing_log_site",
            MqttParsingLog::Table,
            &[MqttParsingLog::SiteId, MqttParsingLog::Id],
            false,
        )
        .await?;
        create_index(
            manager,
            "idx_mqtt_parsing_log_created",
            MqttParsingLog::Table,
            &[MqttParsingLog::CreatedAt],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children first, so foreign keys never point at a dropped table.
        let tables: [DynIden; 10] = [
            MqttParsingLog::Table.into_iden(),
            MqttConnectionLog::Table.into_iden(),
            SensorReading::Table.into_iden(),
            Sensor::Table.into_iden(),
            Datalogger::Table.into_iden(),
            Gateway::Table.into_iden(),
            DiscoveredTopic::Table.into_iden(),
            MqttTopic::Table.into_iden(),
            MqttConnection::Table.into_iden(),
            Site::Table.into_iden(),
        ];
        for table in tables {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn create_index<T, C>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: &[C],
    unique: bool,
) -> Result<(), DbErr>
where
    T: IntoIden + Copy + 'static,
    C: IntoIden + Copy + 'static,
{
    let mut index = Index::create();
    index.name(name).table(table).if_not_exists();
    for column in columns {
        index.col(*column);
    }
    if unique {
        index.unique();
    }
    manager.create_index(index.to_owned()).await
}

#[derive(DeriveIden, Clone, Copy)]
enum Site {
    Table,
    Id,
    Name,
    Slug,
    IsActive,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MqttConnection {
    Table,
    Id,
    SiteId,
    Host,
    Port,
    Username,
    Password,
    ClientId,
    UseTls,
    CaFile,
    KeepaliveSecs,
    CleanSession,
    IsActive,
    Status,
    LastError,
    ConnectedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MqttTopic {
    Table,
    Id,
    SiteId,
    Pattern,
    Parser,
    Qos,
    IsActive,
    Priority,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum DiscoveredTopic {
    Table,
    Id,
    SiteId,
    Topic,
    FirstSeen,
    LastSeen,
    MessageCount,
    LastPayload,
    IsProcessable,
    MqttTopicId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Gateway {
    Table,
    Id,
    SiteId,
    Identifier,
    Name,
    LastSeen,
    IsOnline,
    Metadata,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Datalogger {
    Table,
    Id,
    GatewayId,
    Identifier,
    LastSeen,
    IsOnline,
    Metadata,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Sensor {
    Table,
    Id,
    DataloggerId,
    Name,
    Unit,
    LastValue,
    LastReadingAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SensorReading {
    Table,
    SensorId,
    Ts,
    Value,
}

#[derive(DeriveIden, Clone, Copy)]
enum MqttConnectionLog {
    Table,
    Id,
    SiteId,
    Event,
    Message,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MqttParsingLog {
    Table,
    Id,
    SiteId,
    Topic,
    Parser,
    Error,
    Payload,
    ReceivedAt,
    CreatedAt,
    ReplayedAt,
}
