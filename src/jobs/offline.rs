//! Offline detection: a gateway or datalogger silent for `jobs.offline_after_secs` is marked
//! offline, and browsers are told.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::entity::{datalogger, gateway};
use crate::events::{Event, Hub};

/// The cause recorded in `device_event` for a device this job marks offline.
pub const OFFLINE_TIMEOUT: &str = "offline_timeout";

/// The moment before which "last seen" means offline.
pub fn offline_cutoff(now: DateTime<Utc>, offline_after_secs: u64) -> DateTime<Utc> {
    i64::try_from(offline_after_secs)
        .ok()
        .and_then(Duration::try_seconds)
        .and_then(|silence| now.checked_sub_signed(silence))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub async fn mark_offline(
    db: &DatabaseConnection,
    hub: &Hub,
    offline_after_secs: u64,
) -> Result<String, DbErr> {
    let now = Utc::now();
    let cutoff = offline_cutoff(now, offline_after_secs);
    let silent_dataloggers = datalogger::Entity::find()
        .filter(datalogger::Column::IsOnline.eq(true))
        .filter(datalogger::Column::LastSeen.lt(cutoff))
        .all(db)
        .await?;
    let silent_gateways = gateway::Entity::find()
        .filter(gateway::Column::IsOnline.eq(true))
        .filter(gateway::Column::LastSeen.lt(cutoff))
        .all(db)
        .await?;
    if silent_dataloggers.is_empty() && silent_gateways.is_empty() {
        return Ok("nothing went silent".into());
    }
    // The `last_seen` condition is repeated so a device that spoke since the select stays online.
    datalogger::Entity::update_many()
        .col_expr(datalogger::Column::IsOnline, Expr::value(false))
        .col_expr(
            datalogger::Column::OnlineCause,
            Expr::value(OFFLINE_TIMEOUT),
        )
        .col_expr(datalogger::Column::OnlineChangedAt, Expr::value(now))
        .filter(datalogger::Column::Id.is_in(silent_dataloggers.iter().map(|row| row.id)))
        .filter(datalogger::Column::LastSeen.lt(cutoff))
        .exec(db)
        .await?;
    gateway::Entity::update_many()
        .col_expr(gateway::Column::IsOnline, Expr::value(false))
        .col_expr(gateway::Column::OnlineCause, Expr::value(OFFLINE_TIMEOUT))
        .col_expr(gateway::Column::OnlineChangedAt, Expr::value(now))
        .filter(gateway::Column::Id.is_in(silent_gateways.iter().map(|row| row.id)))
        .filter(gateway::Column::LastSeen.lt(cutoff))
        .exec(db)
        .await?;

    for row in &silent_gateways {
        hub.send(&Event::GatewayUpdate {
            site_id: row.site_id,
            gateway: row.identifier.clone(),
            is_online: Some(false),
            last_seen: row.last_seen,
            metadata: row.metadata.clone(),
            retained: false,
        });
    }
    if !silent_dataloggers.is_empty() {
        let gateways = gateway::Entity::find()
            .filter(gateway::Column::Id.is_in(silent_dataloggers.iter().map(|row| row.gateway_id)))
            .all(db)
            .await?;
        for row in &silent_dataloggers {
            if let Some(owner) = gateways.iter().find(|gateway| gateway.id == row.gateway_id) {
                hub.send(&Event::DataloggerUpdate {
                    site_id: owner.site_id,
                    gateway: owner.identifier.clone(),
                    datalogger: row.identifier.clone(),
                    ts: row.last_seen.unwrap_or(cutoff),
                    is_online: Some(false),
                    sensors: Vec::new(),
                    retained: false,
                });
            }
        }
    }
    Ok(format!(
        "{} gateway(s) and {} datalogger(s) marked offline",
        silent_gateways.len(),
        silent_dataloggers.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_now_minus_the_silence() {
        let now = Utc::now();
        assert_eq!(offline_cutoff(now, 300), now - Duration::seconds(300));
    }

    #[test]
    fn absurd_silences_do_not_overflow() {
        let now = Utc::now();
        assert!(offline_cutoff(now, u64::MAX) < now);
    }
}
