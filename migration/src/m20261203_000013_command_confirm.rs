//! A command made from a template keeps the device reply that confirms it, and the expiry sweep
//! finds overdue commands by status and time instead of reading every command.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000013_command_confirm"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(DeviceCommand::Table)
                    .add_column(text_null(DeviceCommand::ConfirmRule))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("device_command_status_expiry")
                    .table(DeviceCommand::Table)
                    .col(DeviceCommand::Status)
                    .col(DeviceCommand::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("device_command_status_expiry")
                    .table(DeviceCommand::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DeviceCommand::Table)
                    .drop_column(DeviceCommand::ConfirmRule)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum DeviceCommand {
    Table,
    Status,
    ExpiresAt,
    ConfirmRule,
}
