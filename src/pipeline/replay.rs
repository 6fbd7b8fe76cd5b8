//! Replaying a parsing-log row through today's patterns and parsers.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Set,
};
use serde::Serialize;

use super::notify::events;
use super::persist::{persist, BatchKind, WriteCache};
use super::{prepare, Arrival, Limits, Outcome};
use crate::entity::{mqtt_parsing_log, mqtt_topic};
use crate::events::Hub;
use crate::parsers::{ParseOutput, Registry};
use crate::routing::{SiteRoutes, TopicSpec};

#[derive(Debug, Serialize)]
pub struct ReplayOutcome {
    pub id: i32,
    pub ok: bool,
    pub error: Option<String>,
    pub output: Option<ParseOutput>,
}

/// Stores the payload if it now parses (and marks the row replayed); otherwise reports why not
/// and leaves the row as it was.
pub async fn replay(
    db: &DatabaseConnection,
    hub: &Hub,
    registry: &Arc<Registry>,
    limits: &Limits,
    log: mqtt_parsing_log::Model,
) -> Result<ReplayOutcome, DbErr> {
    let routes = site_routes(db, log.site_id).await?;
    replay_with(db, hub, registry, limits, &routes, log).await
}

/// Replays each row in turn, as `replay` does, reading each site's patterns once.
pub async fn replay_all(
    db: &DatabaseConnection,
    hub: &Hub,
    registry: &Arc<Registry>,
    limits: &Limits,
    logs: Vec<mqtt_parsing_log::Model>,
) -> Result<Vec<ReplayOutcome>, DbErr> {
    let mut routes_of_site: HashMap<i32, SiteRoutes> = HashMap::new();
    let mut outcomes = Vec::with_capacity(logs.len());
    for log in logs {
        let routes = match routes_of_site.entry(log.site_id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(site_routes(db, log.site_id).await?),
        };
        outcomes.push(replay_with(db, hub, registry, limits, routes, log).await?);
    }
    Ok(outcomes)
}

/// The site's patterns as they are now.
async fn site_routes(db: &DatabaseConnection, site_id: i32) -> Result<SiteRoutes, DbErr> {
    let topics: Vec<TopicSpec> = mqtt_topic::Entity::find()
        .filter(mqtt_topic::Column::SiteId.eq(site_id))
        .order_by_asc(mqtt_topic::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(TopicSpec::from)
        .collect();
    Ok(SiteRoutes::build(&topics, None))
}

async fn replay_with(
    db: &DatabaseConnection,
    hub: &Hub,
    registry: &Arc<Registry>,
    limits: &Limits,
    routes: &SiteRoutes,
    log: mqtt_parsing_log::Model,
) -> Result<ReplayOutcome, DbErr> {
    let prepared = prepare(
        Arrival {
            site_id: log.site_id,
            topic: log.topic.clone(),
            payload: log.payload.clone().into(),
            user_properties: Vec::new(),
            received_at: log.received_at,
            // A replay is the message as it first arrived: live news of that moment (never of
            // this one: the newest `last_seen` wins), or old news if the broker retained it.
            retained: log.retained,
        },
        routes.router.route(&log.topic).as_ref(),
        registry,
        limits,
    );
    let id = log.id;
    let output = match &prepared.outcome {
        Outcome::Unrouted => {
            return Ok(ReplayOutcome {
                id,
                ok: false,
                error: Some(format!(
                    "no active topic pattern of site {} matches '{}'",
                    log.site_id, log.topic
                )),
                output: None,
            })
        }
        Outcome::Failed { error } => {
            return Ok(ReplayOutcome {
                id,
                ok: false,
                error: Some(error.clone()),
                output: None,
            })
        }
        Outcome::Parsed(output) => output.clone(),
    };
    let batch = [prepared];
    // A private cache with nothing pending: everything the payload touches is written now.
    let mut cache = WriteCache::new(std::time::Duration::ZERO);
    // A replayed payload may carry readings stored when it first arrived.
    cache.expect_duplicates(std::time::Duration::from_secs(60));
    persist(
        db,
        &batch,
        limits.sample_bytes,
        &mut cache,
        BatchKind::Replayed,
    )
    .await?;
    let mut row = log.into_active_model();
    row.replayed_at = Set(Some(Utc::now()));
    row.update(db).await?;
    for event in events(&batch, cache.sensor_ids(), cache.names(), &[]) {
        hub.send(&event);
    }
    Ok(ReplayOutcome {
        id,
        ok: true,
        error: None,
        output: Some(output),
    })
}
