//! The lease manager: every third of the lease (and at once when woken) one short transaction
//! heartbeats this instance, renews its leases, hands back those it should not keep and takes
//! free ones, as `placement::place` decides. What it may run goes to the supervisor through the
//! `Allowed` watch. It never relies on another instance's clock: expiry is the database's `now()`.
//!
//! Safety rule: a lease is only given back once the supervisor has stopped that shard's client,
//! and when renewing fails for long enough that the lease could run out, everything is stopped
//! first (the fence): two clients with one client id must never exist, even for a moment.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QueryFilter, Set, Statement, TransactionTrait, Value,
};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::placement::{place, ShardKey, Snapshot};
use super::{Allowed, ClusterControl, LeaseView, Notifier, ShardOwner};
use crate::entity::{connection_lease, instance, mqtt_connection, site};
use crate::events::Hub;

/// What the lease manager needs.
pub struct LeaseContext {
    pub db: DatabaseConnection,
    pub instance_id: Arc<str>,
    pub http_addr: String,
    pub lease: Duration,
    /// PostgreSQL: leases are contended; SQLite: this instance runs everything.
    pub shared: bool,
    pub control: ClusterControl,
    pub view: LeaseView,
    pub notifier: Notifier,
    pub wake: Arc<Notify>,
    /// The shards the supervisor runs right now.
    pub running: watch::Receiver<BTreeSet<ShardKey>>,
    pub hub: Hub,
    pub shutdown: CancellationToken,
}

/// What one round found and did.
#[derive(Debug, Default)]
struct Round {
    owned: BTreeSet<ShardKey>,
    /// Shards given up in this round (their clients were already stopped).
    released: usize,
    taken: usize,
}

/// The part of the lease kept as a margin: clients stop this long before the lease could run
/// out, so stopping (the last acknowledgements, the DISCONNECT) has time to finish.
fn fence_margin(lease: Duration) -> Duration {
    lease / 3
}

/// How often leases are renewed: a quarter of the lease, so two renewals may fail before the
/// fence.
fn renew_every(lease: Duration) -> Duration {
    lease / 4
}

pub async fn run(mut context: LeaseContext) {
    let renew_every = renew_every(context.lease);
    let mut owned: BTreeSet<ShardKey> = BTreeSet::new();
    let mut releasing: BTreeSet<ShardKey> = BTreeSet::new();
    let mut valid_until: Option<Instant> = None;
    let mut fenced = false;
    let mut first = true;
    let mut ticker = tokio::time::interval(renew_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let fence_at = valid_until.filter(|_| context.shared && !fenced);
        tokio::select! {
            _ = context.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
            _ = context.wake.notified() => {}
            changed = context.running.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = sleep_until_or_never(fence_at) => {
                fenced = true;
                fence(&context);
                continue;
            }
        }
        let started = Instant::now();
        let running = context.running.borrow().clone();
        // The fence must not wait for a round that hangs on the database.
        let fence_at = valid_until.filter(|_| context.shared && !fenced);
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(
                renew_every.max(Duration::from_secs(1)),
                round(&context, &owned, &mut releasing, &running, first),
            ) => outcome,
            _ = sleep_until_or_never(fence_at) => {
                fenced = true;
                fence(&context);
                continue;
            }
        };
        match outcome {
            Ok(Ok(result)) => {
                first = false;
                valid_until = Some(started + context.lease - fence_margin(context.lease));
                if fenced {
                    tracing::info!(instance = &*context.instance_id, "leases renewed again");
                    fenced = false;
                }
                owned = result.owned;
                let allowed = if context.shared {
                    Allowed::Only(owned.difference(&releasing).copied().collect())
                } else {
                    Allowed::Everything
                };
                context.control.allowed.send_if_modified(|current| {
                    let changed = *current != allowed;
                    *current = allowed;
                    changed
                });
                if result.released + result.taken > 0 {
                    context.notifier.leases_changed().await;
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(instance = &*context.instance_id, %error, "lease round failed; retrying")
            }
            Err(_) => {
                tracing::warn!(
                    instance = &*context.instance_id,
                    "lease round timed out; retrying"
                )
            }
        }
    }
    shut_down(&mut context).await;
}

/// After shutdown: once the supervisor has stopped every client, gives every lease back and
/// leaves the instance list, so the others take over at once instead of after the lease.
async fn shut_down(context: &mut LeaseContext) {
    let stopped = tokio::time::timeout(Duration::from_secs(20), async {
        while !context.running.borrow().is_empty() {
            if context.running.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    if stopped.is_err() {
        tracing::warn!("clients still running 20 s after shutdown; leases left to expire");
        return;
    }
    let released = async {
        connection_lease::Entity::update_many()
            .col_expr(
                connection_lease::Column::Owner,
                sea_orm::sea_query::Expr::value(Option::<String>::None),
            )
            .col_expr(
                connection_lease::Column::ExpiresAt,
                sea_orm::sea_query::Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                connection_lease::Column::Status,
                sea_orm::sea_query::Expr::value("stopped"),
            )
            .filter(connection_lease::Column::Owner.eq(&*context.instance_id))
            .exec(&context.db)
            .await?;
        instance::Entity::delete_by_id(context.instance_id.to_string())
            .exec(&context.db)
            .await?;
        Ok::<(), DbErr>(())
    };
    match tokio::time::timeout(Duration::from_secs(5), released).await {
        Ok(Ok(())) => context.notifier.leases_changed().await,
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot give the leases back; they expire instead")
        }
        Err(_) => tracing::warn!("giving the leases back timed out; they expire instead"),
    }
}

/// Stops every client: the leases may run out before they can be renewed.
fn fence(context: &LeaseContext) {
    tracing::error!(
        instance = &*context.instance_id,
        "cannot renew connection leases: stopping every client before the leases run out"
    );
    let _ = context.control.allowed.send(Allowed::Only(BTreeSet::new()));
}

async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

async fn round(
    context: &LeaseContext,
    owned: &BTreeSet<ShardKey>,
    releasing: &mut BTreeSet<ShardKey>,
    running: &BTreeSet<ShardKey>,
    first: bool,
) -> Result<Round, DbErr> {
    let transaction = context.db.begin().await?;
    let result = if context.shared {
        postgres_round(context, &transaction, owned, releasing, running, first).await?
    } else {
        single_round(context, &transaction, first).await?
    };
    transaction.commit().await?;
    Ok(result)
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn keys_as_arrays(keys: &BTreeSet<ShardKey>) -> (Value, Value) {
    let connections: Vec<i32> = keys.iter().map(|(connection, _)| *connection).collect();
    let shards: Vec<i32> = keys.iter().map(|(_, shard)| *shard).collect();
    (connections.into(), shards.into())
}

fn key_of(row: &sea_orm::QueryResult) -> Result<ShardKey, DbErr> {
    Ok((
        row.try_get_by_index::<i32>(0)?,
        row.try_get_by_index::<i32>(1)?,
    ))
}

/// Every active connection of an active site, expanded into its shards.
async fn wanted_shards(transaction: &DatabaseTransaction) -> Result<BTreeSet<ShardKey>, DbErr> {
    let active_sites: Vec<i32> = site::Entity::find()
        .filter(site::Column::IsActive.eq(true))
        .all(transaction)
        .await?
        .into_iter()
        .map(|row| row.id)
        .collect();
    Ok(mqtt_connection::Entity::find()
        .filter(mqtt_connection::Column::IsActive.eq(true))
        .filter(mqtt_connection::Column::SiteId.is_in(active_sites))
        .all(transaction)
        .await?
        .into_iter()
        .flat_map(|row| (0..row.shards.max(1)).map(move |shard| (row.id, shard)))
        .collect())
}

async fn postgres_round(
    context: &LeaseContext,
    transaction: &DatabaseTransaction,
    owned: &BTreeSet<ShardKey>,
    releasing: &mut BTreeSet<ShardKey>,
    running: &BTreeSet<ShardKey>,
    first: bool,
) -> Result<Round, DbErr> {
    let me = &*context.instance_id;
    let lease_secs = context.lease.as_secs_f64();
    let websocket_clients = i32::try_from(context.hub.local_client_count()).unwrap_or(i32::MAX);
    transaction
        .execute_raw(statement(
            "INSERT INTO instance (id, http_addr, host, pid, started_at, heartbeat_at, websocket_clients) \
             VALUES ($1, $2, $3, $4, now(), now(), $5) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), http_addr = excluded.http_addr, \
               host = excluded.host, pid = excluded.pid, websocket_clients = excluded.websocket_clients, \
               started_at = CASE WHEN $6 THEN now() ELSE instance.started_at END",
            vec![
                me.into(),
                context.http_addr.clone().into(),
                host_name().into(),
                (std::process::id() as i32).into(),
                websocket_clients.into(),
                first.into(),
            ],
        ))
        .await?;
    let live = transaction
        .query_all_raw(statement(
            "SELECT id, websocket_clients FROM instance \
             WHERE heartbeat_at > now() - make_interval(secs => $1)",
            vec![lease_secs.into()],
        ))
        .await?;
    let mut instances = BTreeSet::new();
    let mut remote_watchers = false;
    for row in &live {
        let id: String = row.try_get_by_index(0)?;
        let watchers: i32 = row.try_get_by_index(1)?;
        remote_watchers |= id != me && watchers > 0;
        instances.insert(id);
    }
    context.hub.set_remote_watchers(remote_watchers);
    let wanted = wanted_shards(transaction).await?;
    // Renew everything still ours: a lease that ran out but that nobody took is ours again.
    let mut still_owned = BTreeSet::new();
    for row in transaction
        .query_all_raw(statement(
            "UPDATE connection_lease SET expires_at = now() + make_interval(secs => $2), updated_at = now() \
             WHERE owner = $1 RETURNING connection_id, shard",
            vec![me.into(), lease_secs.into()],
        ))
        .await?
    {
        still_owned.insert(key_of(&row)?);
    }
    for lost in owned.difference(&still_owned) {
        tracing::warn!(
            connection_id = lost.0,
            shard = lost.1,
            "a lease was taken by another instance"
        );
    }
    let lease_rows = transaction
        .query_all_raw(statement(
            "SELECT connection_id, shard, owner, status, last_error, expires_at, \
                    (expires_at IS NOT NULL AND expires_at > now()) AS valid \
             FROM connection_lease",
            vec![],
        ))
        .await?;
    let mut view: BTreeMap<i32, Vec<ShardOwner>> = BTreeMap::new();
    let mut valid_owners: BTreeMap<ShardKey, String> = BTreeMap::new();
    for row in &lease_rows {
        let key = key_of(row)?;
        let owner: Option<String> = row.try_get_by_index(2)?;
        let valid: bool = row.try_get_by_index(6)?;
        if let (Some(owner), true) = (&owner, valid) {
            valid_owners.insert(key, owner.clone());
        }
        view.entry(key.0).or_default().push(ShardOwner {
            shard: key.1,
            owner: owner.filter(|_| valid),
            status: row.try_get_by_index(3)?,
            last_error: row.try_get_by_index(4)?,
            expires_at: row.try_get_by_index(5)?,
        });
    }
    let placement = place(&Snapshot {
        me,
        instances: instances.iter().map(String::as_str).collect(),
        wanted,
        owners: valid_owners
            .iter()
            .map(|(key, owner)| (*key, owner.as_str()))
            .collect(),
    });
    // Two steps: first the supervisor stops the shard (it is no longer allowed), then, once it
    // no longer runs, the lease is given back.
    releasing.retain(|key| still_owned.contains(key));
    releasing.extend(placement.release.iter().copied());
    let ready: BTreeSet<ShardKey> = releasing
        .iter()
        .filter(|key| !running.contains(key))
        .copied()
        .collect();
    let mut released = 0;
    if !ready.is_empty() {
        let (connections, shards) = keys_as_arrays(&ready);
        let result = transaction
            .execute_raw(statement(
                "UPDATE connection_lease SET owner = NULL, expires_at = NULL, status = 'stopped', updated_at = now() \
                 WHERE owner = $1 AND (connection_id, shard) IN (SELECT * FROM unnest($2::int4[], $3::int4[]))",
                vec![me.into(), connections, shards],
            ))
            .await?;
        released = result.rows_affected() as usize;
        for key in &ready {
            releasing.remove(key);
            still_owned.remove(key);
        }
    }
    let mut taken = 0;
    if !placement.take.is_empty() {
        let keys: BTreeSet<ShardKey> = placement.take.iter().copied().collect();
        let (connections, shards) = keys_as_arrays(&keys);
        for row in transaction
            .query_all_raw(statement(
                "INSERT INTO connection_lease (connection_id, shard, owner, epoch, expires_at, status, updated_at) \
                 SELECT k.connection_id, k.shard, $1, 1, now() + make_interval(secs => $4), 'stopped', now() \
                   FROM unnest($2::int4[], $3::int4[]) AS k(connection_id, shard) \
                   JOIN mqtt_connection ON mqtt_connection.id = k.connection_id \
                 ON CONFLICT (connection_id, shard) DO UPDATE SET owner = excluded.owner, \
                   epoch = connection_lease.epoch + 1, expires_at = excluded.expires_at, \
                   updated_at = excluded.updated_at \
                 WHERE connection_lease.owner IS NULL OR connection_lease.expires_at IS NULL \
                   OR connection_lease.expires_at <= now() \
                 RETURNING connection_id, shard",
                vec![me.into(), connections, shards, lease_secs.into()],
            ))
            .await?
        {
            let key = key_of(&row)?;
            still_owned.insert(key);
            taken += 1;
            let entry = view.entry(key.0).or_default();
            entry.retain(|lease| lease.shard != key.1);
            entry.push(ShardOwner {
                shard: key.1,
                owner: Some(me.to_string()),
                status: "stopped".into(),
                last_error: None,
                expires_at: None,
            });
        }
    }
    for key in &ready {
        if let Some(entry) = view.get_mut(&key.0) {
            for lease in entry.iter_mut().filter(|lease| lease.shard == key.1) {
                lease.owner = None;
            }
        }
    }
    context.view.replace(view);
    // Old rows: instances gone for an hour, relayed events nobody needs any more.
    transaction
        .execute_unprepared(
            "DELETE FROM instance WHERE heartbeat_at < now() - interval '1 hour'; \
             DELETE FROM event_relay WHERE created_at < now() - interval '1 minute'",
        )
        .await?;
    Ok(Round {
        owned: still_owned,
        released,
        taken,
    })
}

/// SQLite: one instance, which owns every wanted shard; the lease rows only say so.
async fn single_round(
    context: &LeaseContext,
    transaction: &DatabaseTransaction,
    first: bool,
) -> Result<Round, DbErr> {
    let me = context.instance_id.to_string();
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(context.lease).unwrap_or_default();
    let heartbeat = instance::ActiveModel {
        id: Set(me.clone()),
        http_addr: Set(context.http_addr.clone()),
        host: Set(host_name()),
        pid: Set(std::process::id() as i32),
        started_at: Set(now),
        heartbeat_at: Set(now),
        websocket_clients: Set(i32::try_from(context.hub.local_client_count()).unwrap_or(0)),
    };
    let mut update = vec![
        instance::Column::HttpAddr,
        instance::Column::Host,
        instance::Column::Pid,
        instance::Column::HeartbeatAt,
        instance::Column::WebsocketClients,
    ];
    if first {
        update.push(instance::Column::StartedAt);
    }
    instance::Entity::insert(heartbeat)
        .on_conflict(
            OnConflict::column(instance::Column::Id)
                .update_columns(update)
                .to_owned(),
        )
        .exec_without_returning(transaction)
        .await?;
    let wanted = wanted_shards(transaction).await?;
    connection_lease::Entity::delete_many()
        .filter(connection_lease::Column::Owner.ne(me.as_str()))
        .exec(transaction)
        .await?;
    let existing: BTreeMap<ShardKey, connection_lease::Model> = connection_lease::Entity::find()
        .all(transaction)
        .await?
        .into_iter()
        .map(|row| ((row.connection_id, row.shard), row))
        .collect();
    let gone: Vec<ShardKey> = existing
        .keys()
        .filter(|key| !wanted.contains(key))
        .copied()
        .collect();
    for (connection_id, shard) in &gone {
        connection_lease::Entity::delete_many()
            .filter(connection_lease::Column::ConnectionId.eq(*connection_id))
            .filter(connection_lease::Column::Shard.eq(*shard))
            .exec(transaction)
            .await?;
    }
    let rows: Vec<connection_lease::ActiveModel> = wanted
        .iter()
        .map(|(connection_id, shard)| connection_lease::ActiveModel {
            connection_id: Set(*connection_id),
            shard: Set(*shard),
            owner: Set(Some(me.clone())),
            epoch: Set(1),
            expires_at: Set(Some(expires)),
            status: Set("stopped".into()),
            last_error: Set(None),
            updated_at: Set(now),
        })
        .collect();
    for chunk in rows.chunks(500) {
        connection_lease::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    connection_lease::Column::ConnectionId,
                    connection_lease::Column::Shard,
                ])
                .update_columns([
                    connection_lease::Column::Owner,
                    connection_lease::Column::ExpiresAt,
                    connection_lease::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec_without_returning(transaction)
            .await?;
    }
    let mut view: BTreeMap<i32, Vec<ShardOwner>> = BTreeMap::new();
    for (key, row) in &existing {
        if wanted.contains(key) {
            view.entry(key.0).or_default().push(ShardOwner {
                shard: key.1,
                owner: Some(me.clone()),
                status: row.status.clone(),
                last_error: row.last_error.clone(),
                expires_at: Some(expires),
            });
        }
    }
    for key in wanted.iter().filter(|key| !existing.contains_key(key)) {
        view.entry(key.0).or_default().push(ShardOwner {
            shard: key.1,
            owner: Some(me.clone()),
            status: "stopped".into(),
            last_error: None,
            expires_at: Some(expires),
        });
    }
    context.view.replace(view);
    Ok(Round {
        owned: wanted,
        released: 0,
        taken: 0,
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|host| host.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_stop_well_before_the_lease_runs_out() {
        assert_eq!(
            fence_margin(Duration::from_secs(15)),
            Duration::from_secs(5)
        );
        for secs in [3, 6, 15, 60] {
            let lease = Duration::from_secs(secs);
            // Two renewals may fail before the fence, and a third is still due before it.
            assert!(
                renew_every(lease) * 2 <= lease - fence_margin(lease),
                "{secs} s"
            );
        }
    }
}
