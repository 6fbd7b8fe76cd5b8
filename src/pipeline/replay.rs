//! Replaying a parsing-log row through today's patterns and parsers.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    Set,
};
use serde::Serialize;

use super::notify::events;
use super::persist::{persist, WriteCache};
use super::{prepare, Limits, Outcome, SiteRoutes};
use crate::entity::{mqtt_parsing_log, mqtt_topic};
use crate::parsers::ParseOutput;
use crate::state::AppState;
use crate::supervisor::TopicSpec;

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
    state: &AppState,
    log: mqtt_parsing_log::Model,
) -> Result<ReplayOutcome, DbErr> {
    let topics: Vec<TopicSpec> = mqtt_topic::Entity::find()
        .filter(mqtt_topic::Column::SiteId.eq(log.site_id))
        .order_by_asc(mqtt_topic::Column::Id)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|topic| TopicSpec {
            id: topic.id,
            pattern: topic.pattern,
            parser: topic.parser,
            qos: u8::try_from(topic.qos.clamp(0, 2)).unwrap_or(1),
            priority: topic.priority,
            is_active: topic.is_active,
        })
        .collect();
    let routes = SiteRoutes::build(&topics);
    let limits = Limits {
        max_payload_bytes: state.config.pipeline.max_payload_bytes,
        sample_bytes: state.config.pipeline.sample_bytes,
    };
    let prepared = prepare(
        log.site_id,
        log.topic.clone(),
        log.payload.clone().into(),
        log.received_at,
        routes.router.route(&log.topic).as_ref(),
        &state.parsers.current(),
        &limits,
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
        &state.db,
        &batch,
        limits.sample_bytes,
        &mut cache,
        false,
        true,
    )
    .await?;
    let mut row = log.into_active_model();
    row.replayed_at = Set(Some(Utc::now()));
    row.update(&state.db).await?;
    for event in events(&batch, cache.sensor_ids(), cache.names(), &[]) {
        state.hub.send(&event);
    }
    Ok(ReplayOutcome {
        id,
        ok: true,
        error: None,
        output: Some(output),
    })
}
