//! The instances sharing the database as `GET /api/instances` shows them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, QueryOrder};
use serde::Serialize;

use crate::entity::{connection_lease, instance, mqtt_connection};

/// One instance and the connection shards it owns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Instance)]
pub struct InstanceInfo {
    pub id: String,
    pub http_addr: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Whether its heartbeat is recent enough for it to count as running.
    pub live: bool,
    /// The connection shards it holds leases for.
    pub connections: Vec<OwnedShard>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OwnedShard {
    pub site_id: i32,
    pub connection_id: i32,
    pub shard: i32,
}

/// Every registered instance, by id; `lease` decides which heartbeats are recent enough.
pub async fn list_instances(
    db: &DatabaseConnection,
    lease: std::time::Duration,
) -> Result<Vec<InstanceInfo>, DbErr> {
    let instances = instance::Entity::find()
        .order_by_asc(instance::Column::Id)
        .all(db)
        .await?;
    let sites: BTreeMap<i32, i32> = mqtt_connection::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|connection| (connection.id, connection.site_id))
        .collect();
    let now = Utc::now();
    let mut owned: BTreeMap<String, Vec<OwnedShard>> = BTreeMap::new();
    for lease_row in connection_lease::Entity::find().all(db).await? {
        let (Some(owner), Some(expires_at)) = (lease_row.owner, lease_row.expires_at) else {
            continue;
        };
        if expires_at < now {
            continue;
        }
        owned.entry(owner).or_default().push(OwnedShard {
            site_id: sites.get(&lease_row.connection_id).copied().unwrap_or(0),
            connection_id: lease_row.connection_id,
            shard: lease_row.shard,
        });
    }
    let freshness = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(15));
    Ok(instances
        .into_iter()
        .map(|row| {
            let mut connections = owned.remove(&row.id).unwrap_or_default();
            connections.sort_by_key(|shard| (shard.site_id, shard.shard));
            InstanceInfo {
                live: row.heartbeat_at > now - freshness,
                id: row.id,
                http_addr: row.http_addr,
                started_at: row.started_at,
                heartbeat_at: row.heartbeat_at,
                connections,
            }
        })
        .collect())
}
