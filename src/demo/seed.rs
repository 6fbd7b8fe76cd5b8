//! The demo site, its connection to the embedded broker and patterns for every built-in parser.
//! Idempotent: running the demo twice reuses what the first run stored.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
};

use crate::entity::{mqtt_connection, mqtt_topic, site};

pub const SITE_SLUG: &str = "demo-plant";

/// Patterns of the demo site and the parser each is bound to.
/// (pattern, parser, active). The inactive catch-all is subscribed but never parsed, so topics no
/// pattern covers still show up as discovered, not processable.
pub const PATTERNS: &[(&str, &str, bool)] = &[
    (
        "demo/gateway/{gateway}/datalogger/{datalogger}",
        "datalogger_readings_v1",
        true,
    ),
    ("demo/gateway/{gateway}/status", "gateway_status_v1", true),
    (
        "demo/telemetry/{gateway}/{datalogger}",
        "flat_telemetry",
        true,
    ),
    (
        "relayctl/{gateway}/relay/{channel}",
        "relay_controller_v1",
        true,
    ),
    ("relayctl/{gateway}/status", "relay_controller_v1", true),
    ("demo/#", "flat_telemetry", false),
];

pub async fn seed(db: &DatabaseConnection, broker_port: u16) -> Result<i32, DbErr> {
    let now = Utc::now();
    let site = match site::Entity::find()
        .filter(site::Column::Slug.eq(SITE_SLUG))
        .one(db)
        .await?
    {
        Some(site) => site,
        None => {
            site::ActiveModel {
                name: Set("Demo plant".into()),
                slug: Set(SITE_SLUG.into()),
                is_active: Set(true),
                created_at: Set(now),
                ..Default::default()
            }
            .insert(db)
            .await?
        }
    };
    let existing = mqtt_connection::Entity::find()
        .filter(mqtt_connection::Column::SiteId.eq(site.id))
        .one(db)
        .await?;
    match existing {
        Some(connection) => {
            // The broker port may differ from the last run.
            let mut connection: mqtt_connection::ActiveModel = connection.into();
            connection.host = Set("127.0.0.1".into());
            connection.port = Set(i32::from(broker_port));
            connection.is_active = Set(true);
            connection.updated_at = Set(now);
            connection.update(db).await?;
        }
        None => {
            mqtt_connection::ActiveModel {
                site_id: Set(site.id),
                host: Set("127.0.0.1".into()),
                port: Set(i32::from(broker_port)),
                username: Set(None),
                password: Set(None),
                client_id: Set("mqtt-supervisor-demo-plant".into()),
                use_tls: Set(false),
                ca_file: Set(None),
                keepalive_secs: Set(30),
                clean_session: Set(false),
                is_active: Set(true),
                status: Set("stopped".into()),
                last_error: Set(None),
                connected_at: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(db)
            .await?;
        }
    }
    let patterns: Vec<String> = mqtt_topic::Entity::find()
        .filter(mqtt_topic::Column::SiteId.eq(site.id))
        .all(db)
        .await?
        .into_iter()
        .map(|topic| topic.pattern)
        .collect();
    for (pattern, parser, is_active) in PATTERNS {
        if patterns.iter().any(|existing| existing == pattern) {
            continue;
        }
        mqtt_topic::ActiveModel {
            site_id: Set(site.id),
            pattern: Set((*pattern).into()),
            parser: Set((*parser).into()),
            qos: Set(1),
            is_active: Set(*is_active),
            priority: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(site.id)
}
