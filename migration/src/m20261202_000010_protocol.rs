//! A connection may speak MQTT 5 and ask its broker to keep the session for a given time.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000010_protocol"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one change at a time.
        for column in [
            string(MqttConnection::Protocol).default("3.1.1").to_owned(),
            big_integer_null(MqttConnection::SessionExpirySecs),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(MqttConnection::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [MqttConnection::SessionExpirySecs, MqttConnection::Protocol] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MqttConnection::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum MqttConnection {
    Table,
    Protocol,
    SessionExpirySecs,
}
