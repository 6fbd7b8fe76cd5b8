//! The outbox table: storing a command (once per idempotency key), the open commands of a site
//! in order, and status moves that only happen from the statuses that allow them, so two
//! writers (a connection and the expiry sweep) cannot take a command back in time.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};

use super::request::NewCommand;
use super::status::CommandStatus;
use crate::entity::device_command;

/// What `enqueue` did.
#[derive(Debug)]
pub struct Enqueued {
    pub command: device_command::Model,
    /// False when the idempotency key named a command stored before: that one is returned.
    pub created: bool,
}

async fn by_idempotency_key(
    db: &DatabaseConnection,
    site_id: i32,
    key: &str,
) -> Result<Option<device_command::Model>, DbErr> {
    device_command::Entity::find()
        .filter(device_command::Column::SiteId.eq(site_id))
        .filter(device_command::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
}

/// Stores a command as `queued`, or returns the one its idempotency key already names.
pub async fn enqueue(
    db: &DatabaseConnection,
    command: NewCommand,
    now: DateTime<Utc>,
) -> Result<Enqueued, DbErr> {
    if let Some(key) = &command.idempotency_key {
        if let Some(first) = by_idempotency_key(db, command.site_id, key).await? {
            return Ok(Enqueued {
                command: first,
                created: false,
            });
        }
    }
    let expires_at =
        now + chrono::Duration::from_std(command.expires_in).unwrap_or(chrono::Duration::MAX);
    let inserted = device_command::ActiveModel {
        site_id: Set(command.site_id),
        topic: Set(command.topic),
        payload: Set(command.payload),
        qos: Set(i16::from(command.qos)),
        retain: Set(command.retain),
        status: Set(CommandStatus::Queued.as_str().to_owned()),
        error: Set(None),
        template: Set(command.template),
        idempotency_key: Set(command.idempotency_key.clone()),
        created_at: Set(now),
        expires_at: Set(expires_at),
        sent_at: Set(None),
        delivered_at: Set(None),
        confirmed_at: Set(None),
        confirm_rule: Set(command
            .confirm
            .as_ref()
            .and_then(|rule| serde_json::to_string(rule).ok())),
        ..Default::default()
    }
    .insert(db)
    .await;
    match (inserted, &command.idempotency_key) {
        (Ok(command), _) => Ok(Enqueued {
            command,
            created: true,
        }),
        // Two retries at once: the other one stored it first.
        (Err(error), Some(key)) => match by_idempotency_key(db, command.site_id, key).await? {
            Some(first) => Ok(Enqueued {
                command: first,
                created: false,
            }),
            None => Err(error),
        },
        (Err(error), None) => Err(error),
    }
}

/// A site's commands still to be sent or acknowledged, oldest first.
pub async fn open_commands(
    db: &DatabaseConnection,
    site_id: i32,
) -> Result<Vec<device_command::Model>, DbErr> {
    device_command::Entity::find()
        .filter(device_command::Column::SiteId.eq(site_id))
        .filter(
            device_command::Column::Status
                .is_in([CommandStatus::Queued.as_str(), CommandStatus::Sent.as_str()]),
        )
        .order_by_asc(device_command::Column::Id)
        .all(db)
        .await
}

/// Moves a command to `to` if its status allows it, stamping the time of the move; returns the
/// command as it is now, or `None` when it was not moved (gone, or already further).
pub async fn transition(
    db: &DatabaseConnection,
    id: i32,
    to: CommandStatus,
    error: Option<String>,
    at: DateTime<Utc>,
) -> Result<Option<device_command::Model>, DbErr> {
    let mut update = device_command::Entity::update_many()
        .col_expr(device_command::Column::Status, Expr::value(to.as_str()))
        .filter(device_command::Column::Id.eq(id))
        .filter(
            device_command::Column::Status
                .is_in(to.reached_from().iter().map(|from| from.as_str())),
        );
    let stamp = match to {
        CommandStatus::Sent => Some(device_command::Column::SentAt),
        CommandStatus::Delivered => Some(device_command::Column::DeliveredAt),
        CommandStatus::Confirmed => Some(device_command::Column::ConfirmedAt),
        CommandStatus::Queued | CommandStatus::Failed | CommandStatus::Expired => None,
    };
    if let Some(column) = stamp {
        update = update.col_expr(column, Expr::value(at));
    }
    if error.is_some() || to == CommandStatus::Queued {
        update = update.col_expr(device_command::Column::Error, Expr::value(error));
    }
    let result = update.exec(db).await?;
    if result.rows_affected == 0 {
        if to == CommandStatus::Delivered {
            stamp_late_delivery(db, id, at).await?;
        }
        return Ok(None);
    }
    device_command::Entity::find_by_id(id).one(db).await
}

/// A device can reply before the broker's acknowledgement of the command is read, so the command
/// is `confirmed` before it is `delivered`: it stays confirmed and still gets its delivered time.
async fn stamp_late_delivery(
    db: &DatabaseConnection,
    id: i32,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    device_command::Entity::update_many()
        .col_expr(device_command::Column::DeliveredAt, Expr::value(at))
        .filter(device_command::Column::Id.eq(id))
        .filter(device_command::Column::Status.eq(CommandStatus::Confirmed.as_str()))
        .filter(device_command::Column::DeliveredAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Marks every queued command whose time ran out as `expired` and returns them.
pub async fn expire_overdue(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<Vec<device_command::Model>, DbErr> {
    let overdue = device_command::Entity::find()
        .filter(device_command::Column::Status.eq(CommandStatus::Queued.as_str()))
        .filter(device_command::Column::ExpiresAt.lte(now))
        .all(db)
        .await?;
    let mut expired = Vec::with_capacity(overdue.len());
    for command in overdue {
        if let Some(command) = transition(db, command.id, CommandStatus::Expired, None, now).await?
        {
            expired.push(command);
        }
    }
    Ok(expired)
}
