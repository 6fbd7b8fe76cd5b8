//! `/api/sensors/{id}/readings`: a sensor's reading history, newest first; with `bucket`, one
//! row per time bucket (min, max, average, count) computed in the database, so a chart of a
//! year of readings fetches no more points than it can draw.

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::PathId;
use super::pagination::PageQuery;
use super::query::{parse_query, QueryInteger, QueryTime};
use crate::entity::{sensor, sensor_reading};
use crate::state::AppState;

/// A reading; with `bucket`, a bucket of readings: `ts` is its start, `value` its average.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Reading)]
pub struct ReadingResponse {
    pub ts: DateTime<Utc>,
    pub value: f64,
    /// With `bucket`: the smallest value in the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// With `bucket`: the largest value in the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// With `bucket`: the average (also in `value`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg: Option<f64>,
    /// With `bucket`: how many readings the bucket holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// A year: a chart of several years still gets one point per bucket.
const MAX_BUCKET_SECS: i64 = 31_536_000;

/// Buckets per page: a chart one bucket per pixel column wide, even on a wide screen, in one
/// request (plain readings keep the lists' 1000).
pub const MAX_BUCKETS_PER_PAGE: u64 = 10_000;

/// `from` and `to` bound `ts` inclusively; either may be left out.
/// The time range of the readings endpoint (its page parameters are the lists' own).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadingsQuery {
    /// Earliest `ts` (inclusive), RFC 3339; a space stands for an unencoded '+' of the offset.
    #[param(value_type = String, format = DateTime)]
    #[serde(default)]
    pub from: Option<QueryTime>,
    /// Latest `ts` (inclusive), RFC 3339; not earlier than `from`.
    #[param(value_type = String, format = DateTime)]
    #[serde(default)]
    pub to: Option<QueryTime>,
    /// Seconds per bucket (1 to 31536000): one row per bucket that holds readings, with `min`,
    /// `max`, `avg` and `count`, newest first; `limit` and `offset` count buckets, and `limit`
    /// may be up to 10000 (a chart one bucket per pixel column wide).
    #[param(value_type = i64, minimum = 1, maximum = 31_536_000)]
    #[serde(default)]
    pub bucket: Option<QueryInteger>,
}

/// The buckets of one sensor's readings, newest first, computed by the database: each bucket
/// starts at a multiple of `bucket_secs` since the Unix epoch.
fn bucket_statement(
    backend: DbBackend,
    sensor_id: i32,
    bucket_secs: i64,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: u64,
    offset: u64,
) -> Statement {
    // SQLite keeps times as RFC 3339 text, which strftime reads; PostgreSQL as timestamptz, whose
    // `date_part` gives a float where `extract` gives a numeric: a third less time over a year of
    // readings (docs/performance.md, "Sensor chart over a year of readings").
    let (start, placeholder): (&str, fn(usize) -> String) = match backend {
        DbBackend::Postgres => (
            "(floor(date_part('epoch', ts) / $2) * $2)::bigint",
            |index| format!("${index}"),
        ),
        _ => ("(CAST(strftime('%s', ts) AS INTEGER) / ?2) * ?2", |index| {
            format!("?{index}")
        }),
    };
    let mut values: Vec<sea_orm::Value> = vec![sensor_id.into(), bucket_secs.into()];
    let mut conditions = vec![format!("sensor_id = {}", placeholder(1))];
    for (bound, operator) in [(from, ">="), (to, "<=")] {
        if let Some(bound) = bound {
            values.push(bound.into());
            conditions.push(format!("ts {operator} {}", placeholder(values.len())));
        }
    }
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    let limit_placeholder = placeholder(values.len());
    values.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
    let offset_placeholder = placeholder(values.len());
    let sql = format!(
        "SELECT {start} AS bucket_start, MIN(value) AS min_value, MAX(value) AS max_value, \
         AVG(value) AS avg_value, COUNT(*) AS readings \
         FROM sensor_reading WHERE {} \
         GROUP BY bucket_start ORDER BY bucket_start DESC \
         LIMIT {limit_placeholder} OFFSET {offset_placeholder}",
        conditions.join(" AND ")
    );
    Statement::from_sql_and_values(backend, sql, values)
}

/// Runs the bucket query. On PostgreSQL in a transaction that plans it for its own parameters: a
/// connection that has run it five times otherwise settles on a generic plan, made without
/// knowing the range, that reads a year of readings in one process and sorts them on disk, two
/// to three times slower than the parallel scan planned for the range itself
/// (docs/performance.md, "Sensor chart over a year of readings").
async fn query_buckets(
    db: &DatabaseConnection,
    statement: Statement,
) -> Result<Vec<QueryResult>, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return db.query_all_raw(statement).await;
    }
    let transaction = db.begin().await?;
    transaction
        .execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
        .await?;
    let rows = transaction.query_all_raw(statement).await?;
    transaction.commit().await?;
    Ok(rows)
}

pub async fn list(
    State(state): State<AppState>,
    PathId(sensor_id): PathId,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<ReadingResponse>>, ApiError> {
    let query = query.unwrap_or_default();
    let page_query = parse_query::<PageQuery>(&query)?;
    let range = parse_query::<ReadingsQuery>(&query)?;
    let page = if range.bucket.is_some() {
        page_query.page_up_to(MAX_BUCKETS_PER_PAGE)?
    } else {
        page_query.page()?
    };
    let from = range.from.map(|time| time.0);
    let to = range.to.map(|time| time.0);
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(ApiError::validation("from", "must not be later than 'to'"));
        }
    }
    let bucket_secs = range
        .bucket
        .map(|QueryInteger(secs)| {
            if (1..=MAX_BUCKET_SECS).contains(&secs) {
                Ok(secs)
            } else {
                Err(ApiError::validation(
                    "bucket",
                    format!("must be between 1 and {MAX_BUCKET_SECS} seconds (got {secs})"),
                ))
            }
        })
        .transpose()?;
    if sensor::Entity::find_by_id(sensor_id)
        .one(&state.db)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("sensor {sensor_id} not found")));
    }
    if let Some(bucket_secs) = bucket_secs {
        let statement = bucket_statement(
            state.db.get_database_backend(),
            sensor_id,
            bucket_secs,
            from,
            to,
            page.limit,
            page.offset,
        );
        let rows = query_buckets(&state.db, statement).await?;
        let mut buckets = Vec::with_capacity(rows.len());
        for row in rows {
            let start: i64 = row.try_get("", "bucket_start")?;
            let avg: f64 = row.try_get("", "avg_value")?;
            buckets.push(ReadingResponse {
                ts: DateTime::from_timestamp(start, 0).unwrap_or_default(),
                value: avg,
                min: Some(row.try_get("", "min_value")?),
                max: Some(row.try_get("", "max_value")?),
                avg: Some(avg),
                count: Some(row.try_get("", "readings")?),
            });
        }
        return Ok(Json(buckets));
    }
    let mut query =
        sensor_reading::Entity::find().filter(sensor_reading::Column::SensorId.eq(sensor_id));
    if let Some(from) = from {
        query = query.filter(sensor_reading::Column::Ts.gte(from));
    }
    if let Some(to) = to {
        query = query.filter(sensor_reading::Column::Ts.lte(to));
    }
    let rows = query
        .order_by_desc(sensor_reading::Column::Ts)
        .limit(page.limit)
        .offset(page.offset)
        .all(&state.db)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| ReadingResponse {
                ts: row.ts,
                value: row.value,
                min: None,
                max: None,
                avg: None,
                count: None,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_grouped_in_the_database_with_numbered_parameters_per_backend() {
        let from = DateTime::from_timestamp(0, 0);
        let postgres = bucket_statement(DbBackend::Postgres, 7, 60, from, None, 100, 0);
        assert!(postgres
            .sql
            .contains("floor(date_part('epoch', ts) / $2) * $2"));
        assert!(postgres.sql.contains("sensor_id = $1 AND ts >= $3"));
        assert!(postgres.sql.ends_with("LIMIT $4 OFFSET $5"));
        let sqlite = bucket_statement(DbBackend::Sqlite, 7, 60, None, from, 10, 20);
        assert!(sqlite.sql.contains("strftime('%s', ts)"));
        assert!(sqlite.sql.contains("sensor_id = ?1 AND ts <= ?3"));
        assert!(sqlite.sql.ends_with("LIMIT ?4 OFFSET ?5"));
        assert_eq!(sqlite.values.map(|values| values.0.len()), Some(5));
    }
}
