//! Several instances on one database: each registers itself (`instance`), owns connection
//! shards through leases (`connection_lease`: owner, epoch, expiry, and the shard's own status),
//! and a connection may run as several shards (`mqtt_connection.shards`). Events too large for a
//! notification travel to other instances through `event_relay`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000007_cluster"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MqttConnection::Table)
                    .add_column(integer(MqttConnection::Shards).default(1))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(Instance::Table)
                    .col(string(Instance::Id).primary_key())
                    .col(string(Instance::HttpAddr))
                    .col(string(Instance::Host))
                    .col(integer(Instance::Pid))
                    .col(timestamp_with_time_zone(Instance::StartedAt))
                    .col(timestamp_with_time_zone(Instance::HeartbeatAt))
                    .col(integer(Instance::WebsocketClients).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(ConnectionLease::Table)
                    .col(integer(ConnectionLease::ConnectionId))
                    .col(integer(ConnectionLease::Shard))
                    .col(string_null(ConnectionLease::Owner))
                    .col(big_integer(ConnectionLease::Epoch).default(0))
                    .col(timestamp_with_time_zone_null(ConnectionLease::ExpiresAt))
                    .col(string(ConnectionLease::Status).default("stopped"))
                    .col(text_null(ConnectionLease::LastError))
                    .col(timestamp_with_time_zone(ConnectionLease::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(ConnectionLease::ConnectionId)
                            .col(ConnectionLease::Shard),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ConnectionLease::Table, ConnectionLease::ConnectionId)
                            .to(MqttConnection::Table, MqttConnection::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(EventRelay::Table)
                    .col(pk_auto(EventRelay::Id))
                    .col(string(EventRelay::Origin))
                    .col(text(EventRelay::Payload))
                    .col(timestamp_with_time_zone(EventRelay::CreatedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            EventRelay::Table.into_iden(),
            ConnectionLease::Table.into_iden(),
            Instance::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().if_exists().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(MqttConnection::Table)
                    .drop_column(MqttConnection::Shards)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum MqttConnection {
    Table,
    Id,
    Shards,
}

#[derive(DeriveIden)]
enum Instance {
    Table,
    Id,
    HttpAddr,
    Host,
    Pid,
    StartedAt,
    HeartbeatAt,
    WebsocketClients,
}

#[derive(DeriveIden)]
enum ConnectionLease {
    Table,
    ConnectionId,
    Shard,
    Owner,
    Epoch,
    ExpiresAt,
    Status,
    LastError,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum EventRelay {
    Table,
    Id,
    Origin,
    Payload,
    CreatedAt,
}
