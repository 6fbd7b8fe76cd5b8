//! The demo site, its connection to the embedded broker and patterns for every built-in parser.
//! Idempotent: running the demo twice reuses what the first run stored.

use sea_orm::{DatabaseConnection, DbErr};

use crate::seed::{seed_site, PatternSeed, SiteSeed};

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
    let mut site = SiteSeed::new(SITE_SLUG, "127.0.0.1", broker_port);
    site.name = "Demo plant".into();
    site.patterns = PATTERNS
        .iter()
        .map(|(pattern, parser, is_active)| PatternSeed {
            pattern: (*pattern).into(),
            parser: (*parser).into(),
            is_active: *is_active,
        })
        .collect();
    Ok(seed_site(db, &site).await?.site_id)
}
