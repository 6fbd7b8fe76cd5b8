//! A connection may present a client certificate (mutual TLS) and leave a last will with its
//! broker.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000008_client_certificate_and_will"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one change at a time.
        for column in [
            string_null(MqttConnection::ClientCertFile),
            string_null(MqttConnection::ClientKeyFile),
            json_null(MqttConnection::LastWill),
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
        for column in [
            MqttConnection::LastWill,
            MqttConnection::ClientKeyFile,
            MqttConnection::ClientCertFile,
        ] {
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
    ClientCertFile,
    ClientKeyFile,
    LastWill,
}
