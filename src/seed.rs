//! Storing a site with its broker connection and topic patterns in one call, straight into the
//! database: the demo's site, the benchmark's fleet and the tests' sites are all made here.
//! Idempotent by slug: seeding again updates the broker address and adds missing patterns.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
};

use crate::entity::{mqtt_connection, mqtt_topic, site};

/// A topic pattern to store with its parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternSeed {
    pub pattern: String,
    pub parser: String,
    pub is_active: bool,
}

impl PatternSeed {
    pub fn active(pattern: &str, parser: &str) -> PatternSeed {
        PatternSeed {
            pattern: pattern.into(),
            parser: parser.into(),
            is_active: true,
        }
    }
}

/// A site, its connection and its patterns.
#[derive(Debug, Clone)]
pub struct SiteSeed {
    pub name: String,
    pub slug: String,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    /// (username, password)
    pub credentials: Option<(String, String)>,
    pub keepalive_secs: i32,
    /// `"3.1.1"` or `"5"`.
    pub protocol: String,
    /// Whether the connection is switched on. It is switched on only after the patterns are in,
    /// so a reconcile pass in between cannot start a client with nothing to subscribe to.
    pub connection_active: bool,
    pub patterns: Vec<PatternSeed>,
}

impl SiteSeed {
    /// A site named by its slug, its connection to `host:port` switched on, no patterns yet.
    pub fn new(slug: &str, host: &str, port: u16) -> SiteSeed {
        SiteSeed {
            name: slug.into(),
            slug: slug.into(),
            host: host.into(),
            port,
            client_id: format!("mqtt-supervisor-{slug}"),
            credentials: None,
            keepalive_secs: 30,
            protocol: "3.1.1".into(),
            connection_active: true,
            patterns: Vec::new(),
        }
    }
}

/// The ids of what was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededSite {
    pub site_id: i32,
    pub connection_id: i32,
    /// In the order of `SiteSeed::patterns`.
    pub topic_ids: Vec<i32>,
}

pub async fn seed_site(db: &DatabaseConnection, seed: &SiteSeed) -> Result<SeededSite, DbErr> {
    let now = Utc::now();
    let site = match site::Entity::find()
        .filter(site::Column::Slug.eq(&seed.slug))
        .one(db)
        .await?
    {
        Some(site) => site,
        None => {
            site::ActiveModel {
                name: Set(seed.name.clone()),
                slug: Set(seed.slug.clone()),
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
    let connection = match existing {
        Some(connection) => {
            // The broker may have moved since the last run (the demo picks its port).
            let mut connection: mqtt_connection::ActiveModel = connection.into();
            connection.host = Set(seed.host.clone());
            connection.port = Set(i32::from(seed.port));
            connection.updated_at = Set(now);
            connection.update(db).await?
        }
        None => {
            mqtt_connection::ActiveModel {
                site_id: Set(site.id),
                host: Set(seed.host.clone()),
                port: Set(i32::from(seed.port)),
                username: Set(seed.credentials.as_ref().map(|(user, _)| user.clone())),
                password: Set(seed
                    .credentials
                    .as_ref()
                    .map(|(_, password)| password.clone())),
                client_id: Set(seed.client_id.clone()),
                use_tls: Set(false),
                ca_file: Set(None),
                keepalive_secs: Set(seed.keepalive_secs),
                protocol: Set(seed.protocol.clone()),
                clean_session: Set(false),
                is_active: Set(false),
                status: Set("stopped".into()),
                last_error: Set(None),
                connected_at: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(db)
            .await?
        }
    };
    let stored: Vec<mqtt_topic::Model> = mqtt_topic::Entity::find()
        .filter(mqtt_topic::Column::SiteId.eq(site.id))
        .all(db)
        .await?;
    let mut topic_ids = Vec::with_capacity(seed.patterns.len());
    for pattern in &seed.patterns {
        if let Some(known) = stored.iter().find(|row| row.pattern == pattern.pattern) {
            topic_ids.push(known.id);
            continue;
        }
        let row = mqtt_topic::ActiveModel {
            site_id: Set(site.id),
            pattern: Set(pattern.pattern.clone()),
            parser: Set(pattern.parser.clone()),
            qos: Set(1),
            is_active: Set(pattern.is_active),
            priority: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await?;
        topic_ids.push(row.id);
    }
    if connection.is_active != seed.connection_active {
        mqtt_connection::ActiveModel {
            id: Set(connection.id),
            is_active: Set(seed.connection_active),
            updated_at: Set(Utc::now()),
            ..Default::default()
        }
        .update(db)
        .await?;
    }
    Ok(SeededSite {
        site_id: site.id,
        connection_id: connection.id,
        topic_ids,
    })
}
