//! Reading the desired state from the database: active connections of active sites and their
//! active topic patterns.

use std::collections::BTreeMap;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::diff::DesiredClient;
use crate::connection::{ConnectionSettings, LiveSettings};
use crate::entity::{mqtt_connection, mqtt_topic, site};
use crate::routing::TopicSpec;
use crate::secrets::Secrets;
use crate::telemetry::CONNECTION_TARGET;

/// A site's client: (site id, shard).
pub type ClientKey = (i32, i32);

/// Every client that should run, each shard of each active connection of an active site.
pub async fn load(
    db: &DatabaseConnection,
    secrets: &Secrets,
) -> Result<BTreeMap<ClientKey, DesiredClient>, DbErr> {
    let active_sites: Vec<i32> = site::Entity::find()
        .filter(site::Column::IsActive.eq(true))
        .all(db)
        .await?
        .into_iter()
        .map(|site| site.id)
        .collect();
    let connections = mqtt_connection::Entity::find()
        .filter(mqtt_connection::Column::IsActive.eq(true))
        .filter(mqtt_connection::Column::SiteId.is_in(active_sites.iter().copied()))
        .all(db)
        .await?;
    let topics = mqtt_topic::Entity::find()
        .filter(mqtt_topic::Column::SiteId.is_in(connections.iter().map(|c| c.site_id)))
        .order_by_asc(mqtt_topic::Column::Id)
        .all(db)
        .await?;
    let mut topics_by_site: BTreeMap<i32, Vec<TopicSpec>> = BTreeMap::new();
    for topic in topics {
        topics_by_site
            .entry(topic.site_id)
            .or_default()
            .push(TopicSpec::from(topic));
    }
    let mut desired = BTreeMap::new();
    for row in connections {
        match ConnectionSettings::from_row(&row, secrets) {
            Ok(settings) => {
                let live = LiveSettings {
                    topics: topics_by_site.remove(&row.site_id).unwrap_or_default(),
                    discovery_filter: row
                        .discovery_filter
                        .clone()
                        .filter(|filter| !filter.is_empty()),
                    max_silence_secs: row
                        .max_silence_secs
                        .and_then(|secs| u32::try_from(secs).ok())
                        .filter(|secs| *secs > 0),
                    share_group: (settings.shards > 1).then(|| settings.client_id.clone()),
                };
                for shard in 0..settings.shards {
                    desired.insert(
                        (row.site_id, shard),
                        DesiredClient {
                            site_id: row.site_id,
                            settings: settings.for_shard(shard),
                            live: live.clone(),
                        },
                    );
                }
            }
            Err(error) => {
                // A row edited straight in the database, or a password sealed under another key
                // (or none): the API validates everything else.
                tracing::warn!(target: CONNECTION_TARGET, site_id = row.site_id, %error, "connection settings are invalid; not starting it");
                if row.last_error.as_deref() != Some(error.to_string().as_str()) {
                    mqtt_connection::Entity::update_many()
                        .col_expr(mqtt_connection::Column::Status, Expr::value("error"))
                        .col_expr(
                            mqtt_connection::Column::LastError,
                            Expr::value(error.to_string()),
                        )
                        .filter(mqtt_connection::Column::Id.eq(row.id))
                        .exec(db)
                        .await?;
                }
            }
        }
    }
    Ok(desired)
}

/// After a crash or kill the rows may still say `connected`; nothing runs here yet, so say
/// `stopped`. With other instances sharing the database, only rows no live lease covers: the
/// others' connections are theirs to report.
pub async fn reset_statuses(db: &DatabaseConnection, shared: bool) -> Result<(), DbErr> {
    let mut update = mqtt_connection::Entity::update_many()
        .col_expr(mqtt_connection::Column::Status, Expr::value("stopped"))
        .filter(mqtt_connection::Column::Status.ne("stopped"));
    if shared {
        update = update.filter(Expr::cust(
            "NOT EXISTS (SELECT 1 FROM connection_lease WHERE connection_lease.connection_id = \
             mqtt_connection.id AND connection_lease.owner IS NOT NULL \
             AND connection_lease.expires_at > now())",
        ));
    }
    update.exec(db).await?;
    Ok(())
}
