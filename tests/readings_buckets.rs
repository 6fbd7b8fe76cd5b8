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

    // A chart as wide as a large screen takes its buckets in one page: more than the lists'
    // 1000 rows with `bucket`, still 1000 without.
    {
        use mqtt_supervisor::entity::sensor_reading;
        use sea_orm::{EntityTrait, Set};
        let sensor_id_column = i32::try_from(sensor_id).expect("sensor id");
        let earlier = start - 10_000;
        let rows = (0..1_100).map(|second| sensor_reading::ActiveModel {
            sensor_id: Set(sensor_id_column),
            ts: Set(chrono::DateTime::from_timestamp(earlier + second, 0).expect("time")),
            value: Set(second as f64),
        });
        for chunk in rows.collect::<Vec<_>>().chunks(200) {
            sensor_reading::Entity::insert_many(chunk.to_vec())
                .exec(&site.db)
                .await
                .expect("insert readings");
        }
    }
    let before_the_six = chrono::DateTime::from_timestamp(start - 1, 0)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let (status, buckets) = get(format!(
        "/api/sensors/{sensor_id}/readings?bucket=1&to={before_the_six}&limit=20000"
    ))
    .await;
    assert_eq!(status, 200, "{buckets}");
    assert_eq!(buckets.as_array().map(Vec::len), Some(1_100));
    let (_, readings) = get(format!(
        "/api/sensors/{sensor_id}/readings?to={before_the_six}&limit=20000"
    ))
    .await;
    assert_eq!(readings.as_array().map(Vec::len), Some(1_000));

    for bad in ["0", "31536001", "x"] {
        let (status, error) = get(format!("/api/sensors/{sensor_id}/readings?bucket={bad}")).await;
        assert_eq!(status, 422, "{bad}: {error}");
        assert_eq!(error["error"]["field"], "bucket");
    }
}
