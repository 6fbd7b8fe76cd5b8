//! Retention: readings, logs and audit-log rows older than their configured age are deleted, and
//! payload samples of topics silent that long are dropped.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    Statement,
};

use crate::config::JobsConfig;
use crate::entity::{
    audit_log, discovered_topic, mqtt_connection_log, mqtt_parsing_log, sensor_reading,
};

/// Zero days means "keep forever".
pub fn retention_cutoff(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    if days == 0 {
        return None;
    }
    Some(
        Duration::try_days(i64::from(days))
            .and_then(|age| now.checked_sub_signed(age))
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    )
}

/// PostgreSQL has no index on `ts` alone (every stored reading would pay for it), so old rows are
/// reached through the primary key, one sensor's range after another; readings never outlive
/// their sensor there (a trigger deletes them with it).
async fn delete_readings_before(
    db: &DatabaseConnection,
    cutoff: DateTime<Utc>,
) -> Result<u64, DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "DELETE FROM sensor_reading \
             WHERE sensor_id = ANY(ARRAY(SELECT id FROM sensor)) AND ts < $1",
            [cutoff.into()],
        );
        return Ok(db.execute_raw(statement).await?.rows_affected());
    }
    Ok(sensor_reading::Entity::delete_many()
        .filter(sensor_reading::Column::Ts.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected)
}

pub async fn purge(db: &DatabaseConnection, config: &JobsConfig) -> Result<String, DbErr> {
    let now = Utc::now();
    let mut readings = 0;
    if let Some(cutoff) = retention_cutoff(now, config.reading_retention_days) {
        readings = delete_readings_before(db, cutoff).await?;
    }
    let mut logs = 0;
    let mut samples = 0;
    if let Some(cutoff) = retention_cutoff(now, config.log_retention_days) {
        logs += mqtt_connection_log::Entity::delete_many()
            .filter(mqtt_connection_log::Column::CreatedAt.lt(cutoff))
            .exec(db)
            .await?
            .rows_affected;
        logs += mqtt_parsing_log::Entity::delete_many()
            .filter(mqtt_parsing_log::Column::CreatedAt.lt(cutoff))
            .exec(db)
            .await?
            .rows_affected;
        samples = discovered_topic::Entity::update_many()
            .col_expr(
                discovered_topic::Column::LastPayload,
                Expr::value(Option::<String>::None),
            )
            .filter(discovered_topic::Column::LastSeen.lt(cutoff))
            .filter(discovered_topic::Column::LastPayload.is_not_null())
            .exec(db)
            .await?
            .rows_affected;
    }
    if let Some(cutoff) = retention_cutoff(now, config.audit_retention_days) {
        logs += audit_log::Entity::delete_many()
            .filter(audit_log::Column::At.lt(cutoff))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(format!(
        "deleted {readings} reading(s) and {logs} log row(s); dropped {samples} stale sample(s)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_keeps_everything() {
        assert_eq!(retention_cutoff(Utc::now(), 0), None);
    }

    #[test]
    fn absurd_retention_does_not_overflow() {
        assert!(retention_cutoff(Utc::now(), u32::MAX).is_some());
    }

    #[test]
    fn cutoff_is_days_back() {
        let now = Utc::now();
        assert_eq!(retention_cutoff(now, 30), Some(now - Duration::days(30)));
    }
}
