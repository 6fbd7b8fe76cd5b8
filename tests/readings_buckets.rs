//! `GET /api/sensors/{id}/readings?bucket=`: readings that came through a real broker, grouped
//! by the database into buckets with min, max, average and count, on both databases.

mod common;

use std::time::Duration;

use common::{eventually, ingesting_site, ServiceOptions, TestDatabase};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_are_bucketed_in_the_database() {
    let database = TestDatabase::new().await;
    let site = ingesting_site(
        &database,
        ServiceOptions {
            reconcile_secs: 1,
            ..Default::default()
        },
        &[("buckets/{gateway}/{datalogger}", "flat_telemetry")],
    )
    .await;
    // Three buckets of a minute: 1, 2, 3 | 4, 5 | 6.
    let start: i64 = 1_767_225_600; // a whole minute
    for (offset, value) in [
        (0, 1.0),
        (10, 2.0),
        (59, 3.0),
        (60, 4.0),
        (95, 5.0),
        (130, 6.0),
    ] {
        site.publisher
            .publish(
                "buckets/gw/dl",
                json!({"level": value, "ts": start + offset}).to_string(),
            )
            .await;
    }
    let service = &site.service;
    let get = |path: String| async move {
        let response = service
            .client()
            .get(service.url(&path))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let sensor_id = eventually(Duration::from_secs(10), "the six readings", || async {
        let (_, devices) = get(format!("/api/sites/{}/devices", site.site_id)).await;
        let id = devices[0]["dataloggers"][0]["sensors"][0]["id"].as_i64()?;
        let (_, readings) = get(format!("/api/sensors/{id}/readings")).await;
        (readings.as_array()?.len() == 6).then_some(id)
    })
    .await;

    let (status, buckets) = get(format!("/api/sensors/{sensor_id}/readings?bucket=60")).await;
    assert_eq!(status, 200, "{buckets}");
    let minute = |n: i64| {
        chrono::DateTime::from_timestamp(start + 60 * n, 0)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    };
    assert_eq!(
        buckets,
        json!([
            {"ts": minute(2), "value": 6.0, "min": 6.0, "max": 6.0, "avg": 6.0, "count": 1},
            {"ts": minute(1), "value": 4.5, "min": 4.0, "max": 5.0, "avg": 4.5, "count": 2},
            {"ts": minute(0), "value": 2.0, "min": 1.0, "max": 3.0, "avg": 2.0, "count": 3},
        ])
    );
    // The range and the page apply as without buckets.
    let (_, buckets) = get(format!(
        "/api/sensors/{sensor_id}/readings?bucket=60&from={}&limit=1",
        minute(1).replace('+', "%2B")
    ))
    .await;
    assert_eq!(buckets.as_array().map(Vec::len), Some(1), "{buckets}");
    assert_eq!(buckets[0]["count"], 1);
    let (_, buckets) = get(format!("/api/sensors/{sensor_id}/readings?bucket=3600")).await;
    assert_eq!(buckets[0]["count"], 6, "{buckets}");
    assert_eq!(buckets[0]["avg"], 3.5);
    // Plain readings carry no bucket fields.
    let (_, readings) = get(format!("/api/sensors/{sensor_id}/readings?limit=1")).await;
    assert!(readings[0].get("count").is_none(), "{readings}");

    for bad in ["0", "31536001", "x"] {
        let (status, error) = get(format!("/api/sensors/{sensor_id}/readings?bucket={bad}")).await;
        assert_eq!(status, 422, "{bad}: {error}");
        assert_eq!(error["error"]["field"], "bucket");
    }
}
