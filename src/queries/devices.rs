//! The live device tree of a site, gateway → datalogger → sensor, read in three queries however
//! large the site is (the devices endpoint and the WebSocket snapshot both send it).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;

use crate::entity::{datalogger, gateway, sensor};

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Gateway)]
pub struct GatewayNode {
    pub id: i32,
    pub identifier: String,
    #[schema(required)]
    pub name: Option<String>,
    #[schema(required)]
    pub last_seen: Option<DateTime<Utc>>,
    pub is_online: bool,
    /// What the gateway last announced (ip, firmware, uptime…).
    #[schema(required, value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub dataloggers: Vec<DataloggerNode>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Datalogger)]
pub struct DataloggerNode {
    pub id: i32,
    pub identifier: String,
    #[schema(required)]
    pub last_seen: Option<DateTime<Utc>>,
    pub is_online: bool,
    #[schema(required, value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub sensors: Vec<SensorNode>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Sensor)]
pub struct SensorNode {
    pub id: i32,
    pub name: String,
    #[schema(required)]
    pub unit: Option<String>,
    #[schema(required)]
    pub last_value: Option<f64>,
    #[schema(required)]
    pub last_reading_at: Option<DateTime<Utc>>,
}

/// The device tree of a site, ordered by identifier at every level. An unknown site has no
/// devices; callers that must tell the two apart check the site themselves.
pub async fn load_devices(
    db: &DatabaseConnection,
    site_id: i32,
) -> Result<Vec<GatewayNode>, DbErr> {
    let gateways = gateway::Entity::find()
        .filter(gateway::Column::SiteId.eq(site_id))
        .order_by_asc(gateway::Column::Identifier)
        .all(db)
        .await?;
    if gateways.is_empty() {
        return Ok(Vec::new());
    }
    // Sub-selects instead of id lists: a large site would exceed SQLite's bound-parameter limit.
    let gateway_ids = Query::select()
        .column(gateway::Column::Id)
        .from(gateway::Entity)
        .and_where(gateway::Column::SiteId.eq(site_id))
        .to_owned();
    let dataloggers = datalogger::Entity::find()
        .filter(datalogger::Column::GatewayId.in_subquery(gateway_ids.clone()))
        .order_by_asc(datalogger::Column::Identifier)
        .all(db)
        .await?;
    let datalogger_ids = Query::select()
        .column(datalogger::Column::Id)
        .from(datalogger::Entity)
        .and_where(datalogger::Column::GatewayId.in_subquery(gateway_ids))
        .to_owned();
    let sensors = sensor::Entity::find()
        .filter(sensor::Column::DataloggerId.in_subquery(datalogger_ids))
        .order_by_asc(sensor::Column::Name)
        .all(db)
        .await?;

    let mut sensors_by_datalogger: HashMap<i32, Vec<SensorNode>> = HashMap::new();
    for sensor in sensors {
        sensors_by_datalogger
            .entry(sensor.datalogger_id)
            .or_default()
            .push(SensorNode {
                id: sensor.id,
                name: sensor.name,
                unit: sensor.unit,
                last_value: sensor.last_value,
                last_reading_at: sensor.last_reading_at,
            });
    }
    let mut dataloggers_by_gateway: HashMap<i32, Vec<DataloggerNode>> = HashMap::new();
    for datalogger in dataloggers {
        let sensors = sensors_by_datalogger
            .remove(&datalogger.id)
            .unwrap_or_default();
        dataloggers_by_gateway
            .entry(datalogger.gateway_id)
            .or_default()
            .push(DataloggerNode {
                id: datalogger.id,
                identifier: datalogger.identifier,
                last_seen: datalogger.last_seen,
                is_online: datalogger.is_online,
                metadata: datalogger.metadata,
                sensors,
            });
    }
    Ok(gateways
        .into_iter()
        .map(|gateway| GatewayNode {
            dataloggers: dataloggers_by_gateway
                .remove(&gateway.id)
                .unwrap_or_default(),
            id: gateway.id,
            identifier: gateway.identifier,
            name: gateway.name,
            last_seen: gateway.last_seen,
            is_online: gateway.is_online,
            metadata: gateway.metadata,
        })
        .collect())
}
