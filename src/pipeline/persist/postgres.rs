//! PostgreSQL's faster ways: stored rows updated by id from arrays, and a batch's readings
//! inserted as three binary arrays through sqlx, in the batch's sqlx transaction.

use chrono::{DateTime, Utc};
use sea_orm::sqlx;
use sea_orm::DbErr;

use super::device_state::SensorRow;
use super::postgres_arrays::PostgresArray;
use super::statements::ONLINE_BY_MESSAGE;
use super::transaction::{execution_error, PostgresTransaction};

// Known rows are updated by id, from arrays: the multi-row upsert costs the
// database about ten times as much per row (a statement of thousands of parameters planned
// afresh, and an insert tried before each update), and a row the writer has an id for exists,
// since its site is locked for the transaction. Writers (of this instance or of others sharing
// the database, e.g. the shards of one connection) may write the same rows at once, so every
// writer locks them in one order, the key order of the multi-row upserts: the ids come in that
// order, and `lock_in_order` takes the row locks in it before an update, whose own join would
// lock them in whatever order it reads them. Transactions that lock in one order cannot
// deadlock each other.

/// Takes the row locks of `ids` (in `table`) in the order given.
async fn lock_in_order(
    connection: &mut sqlx::PgConnection,
    table: &str,
    ids: &[i32],
) -> Result<(), DbErr> {
    let sql = format!(
        "SELECT 1 FROM {table} JOIN unnest($1::int4[]) WITH ORDINALITY AS known(id, position) \
           ON {table}.id = known.id \
         ORDER BY known.position FOR NO KEY UPDATE OF {table}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(PostgresArray(ids))
        .execute(connection)
        .await
        .map_err(execution_error)?;
    Ok(())
}

/// The same rules as the upsert: the newest time wins, a reading arriving late changes nothing.
pub(super) async fn update_known_dataloggers(
    transaction: &PostgresTransaction,
    ids: &[i32],
    last_seen: &[DateTime<Utc>],
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    let newer = "(datalogger.last_seen IS NULL OR known.last_seen >= datalogger.last_seen)";
    let sql = format!(
        "UPDATE datalogger SET \
           last_seen = CASE WHEN {newer} THEN known.last_seen ELSE datalogger.last_seen END, \
           is_online = CASE WHEN {newer} THEN true ELSE datalogger.is_online END, \
           online_cause = CASE WHEN {newer} THEN '{ONLINE_BY_MESSAGE}' ELSE datalogger.online_cause END, \
           online_changed_at = CASE WHEN {newer} THEN known.last_seen ELSE datalogger.online_changed_at END \
         FROM (SELECT unnest($1::int4[]) AS id, unnest($2::timestamptz[]) AS last_seen) AS known \
         WHERE datalogger.id = known.id"
    );
    let mut connection = transaction.lock().await;
    lock_in_order(&mut connection, "datalogger", ids).await?;
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(PostgresArray(ids))
        .bind(PostgresArray(last_seen))
        .execute(&mut **connection)
        .await
        .map_err(execution_error)?;
    Ok(())
}

/// Sensors with a row id, as four columns.
#[derive(Default)]
pub(super) struct KnownSensors<'a> {
    ids: Vec<i32>,
    units: Vec<Option<&'a str>>,
    values: Vec<f64>,
    times: Vec<DateTime<Utc>>,
}

impl<'a> KnownSensors<'a> {
    pub(super) fn push(&mut self, id: i32, row: &'a SensorRow) {
        self.ids.push(id);
        self.units.push(row.unit.as_deref());
        self.values.push(row.value);
        self.times.push(row.ts);
    }

    /// The same rules as the upsert: a unit is kept when none is sent, and an older reading
    /// arriving late does not overwrite the latest value.
    pub(super) async fn update(self, transaction: &PostgresTransaction) -> Result<(), DbErr> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let newer = "(sensor.last_reading_at IS NULL OR known.ts >= sensor.last_reading_at)";
        let sql = format!(
            "UPDATE sensor SET \
               unit = COALESCE(known.unit, sensor.unit), \
               last_value = CASE WHEN {newer} THEN known.value ELSE sensor.last_value END, \
               last_reading_at = CASE WHEN {newer} THEN known.ts ELSE sensor.last_reading_at END \
             FROM (SELECT unnest($1::int4[]) AS id, unnest($2::text[]) AS unit, \
                          unnest($3::float8[]) AS value, unnest($4::timestamptz[]) AS ts) AS known \
             WHERE sensor.id = known.id"
        );
        let mut connection = transaction.lock().await;
        lock_in_order(&mut connection, "sensor", &self.ids).await?;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(PostgresArray(&self.ids))
            .bind(self.units)
            .bind(PostgresArray(&self.values))
            .bind(PostgresArray(&self.times))
            .execute(&mut **connection)
            .await
            .map_err(execution_error)?;
        Ok(())
    }
}

/// PostgreSQL takes the whole batch as three arrays, bound straight through sqlx: one small
/// prepared statement whatever the batch size, instead of three bind parameters per row.
///
/// A plain insert costs PostgreSQL about half of one with `ON CONFLICT DO NOTHING`, and readings
/// are almost never stored twice, so the plain one is tried first: a duplicate fails the
/// transaction, and the writer stores the batch again with `skip_duplicates`.
pub(super) async fn insert_readings(
    transaction: &PostgresTransaction,
    rows: Vec<(i32, DateTime<Utc>, f64)>,
    skip_duplicates: bool,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut times = Vec::with_capacity(rows.len());
    let mut values = Vec::with_capacity(rows.len());
    for (sensor_id, ts, value) in rows {
        ids.push(sensor_id);
        times.push(ts);
        values.push(value);
    }
    // `unnest` in the select list streams the rows; `FROM UNNEST(a, b, c)` first copies each
    // array into a tuple store of its own. The arrays always have the same length, so the
    // select-list form (which runs them in step) gives the same rows for less work.
    let sql = if skip_duplicates {
        "INSERT INTO sensor_reading (sensor_id, ts, value) \
         SELECT unnest($1::int4[]), unnest($2::timestamptz[]), unnest($3::float8[]) \
         ON CONFLICT (sensor_id, ts) DO NOTHING"
    } else {
        "INSERT INTO sensor_reading (sensor_id, ts, value) \
         SELECT unnest($1::int4[]), unnest($2::timestamptz[]), unnest($3::float8[])"
    };
    let mut connection = transaction.lock().await;
    sqlx::query(sql)
        .bind(PostgresArray(&ids))
        .bind(PostgresArray(&times))
        .bind(PostgresArray(&values))
        .execute(&mut **connection)
        .await
        .map_err(execution_error)?;
    Ok(())
}
