//! The outbox of commands to devices: one row per command, from `queued` to `confirmed`,
//! `failed` or `expired`, deleted with its site.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000011_device_command"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .if_not_exists()
                    .table(DeviceCommand::Table)
                    .col(pk_auto(DeviceCommand::Id))
                    .col(integer(DeviceCommand::SiteId))
                    .col(string(DeviceCommand::Topic))
                    .col(blob(DeviceCommand::Payload))
                    .col(small_integer(DeviceCommand::Qos))
                    .col(boolean(DeviceCommand::Retain))
                    .col(string(DeviceCommand::Status))
                    .col(text_null(DeviceCommand::Error))
                    .col(string_null(DeviceCommand::Template))
                    .col(string_null(DeviceCommand::IdempotencyKey))
                    .col(timestamp_with_time_zone(DeviceCommand::CreatedAt))
                    .col(timestamp_with_time_zone(DeviceCommand::ExpiresAt))
                    .col(timestamp_with_time_zone_null(DeviceCommand::SentAt))
                    .col(timestamp_with_time_zone_null(DeviceCommand::DeliveredAt))
                    .col(timestamp_with_time_zone_null(DeviceCommand::ConfirmedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("device_command_site")
                            .from(DeviceCommand::Table, DeviceCommand::SiteId)
                            .to(Site::Table, Site::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // What a connection sends next: its site's open commands in order.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("device_command_site_status")
                    .table(DeviceCommand::Table)
                    .col(DeviceCommand::SiteId)
                    .col(DeviceCommand::Status)
                    .col(DeviceCommand::Id)
                    .to_owned(),
            )
            .await?;
        // A client's retry finds its first command; two concurrent ones cannot both insert.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("device_command_idempotency")
                    .table(DeviceCommand::Table)
                    .col(DeviceCommand::SiteId)
                    .col(DeviceCommand::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeviceCommand::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DeviceCommand {
    Table,
    Id,
    SiteId,
    Topic,
    Payload,
    Qos,
    Retain,
    Status,
    Error,
    Template,
    IdempotencyKey,
    CreatedAt,
    ExpiresAt,
    SentAt,
    DeliveredAt,
    ConfirmedAt,
}

#[derive(DeriveIden)]
enum Site {
    Table,
    Id,
}
