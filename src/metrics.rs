//! Counters behind `/metrics` (Prometheus text) and the totals `/health` reports.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabels {
    pub site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteParserLabels {
    pub site: String,
    pub parser: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

/// One site's metric of a per-site family, kept by the task that updates it.
fn of_site<M: Clone>(family: &Family<SiteLabels, M>, site_id: i32) -> M {
    family
        .get_or_create(&SiteLabels {
            site: site_id.to_string(),
        })
        .clone()
}

pub struct Metrics {
    registry: Registry,
    pub messages_received: Family<SiteLabels, Counter>,
    pub messages_processed: Family<SiteParserLabels, Counter>,
    pub messages_failed: Family<SiteParserLabels, Counter>,
    pub reconnects: Family<SiteLabels, Counter>,
    pub acknowledgements_waiting: Family<SiteLabels, Gauge>,
    pub connection_silent: Family<SiteLabels, Gauge>,
    pub subscriptions_refused: Family<SiteLabels, Gauge>,
    pub connections: Family<StatusLabels, Gauge>,
    pub batch_messages: Histogram,
    pub commit_seconds: Histogram,
    pub commit_failures: Counter,
    pub websocket_clients: Gauge,
    pub websocket_dropped: Counter,
    pub pipeline_queue_depth: Gauge,
    pub reconcile_seconds: Histogram,
    pub running_clients: Gauge,
    /// Commands to devices that reached each status.
    pub commands: Family<StatusLabels, Counter>,
    processed_total: AtomicU64,
    errors_total: AtomicU64,
    last_message_millis: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mqtt_supervisor");
        let messages_received = Family::<SiteLabels, Counter>::default();
        let messages_processed = Family::<SiteParserLabels, Counter>::default();
        let messages_failed = Family::<SiteParserLabels, Counter>::default();
        let reconnects = Family::<SiteLabels, Counter>::default();
        let acknowledgements_waiting = Family::<SiteLabels, Gauge>::default();
        let connection_silent = Family::<SiteLabels, Gauge>::default();
        let subscriptions_refused = Family::<SiteLabels, Gauge>::default();
        let connections = Family::<StatusLabels, Gauge>::default();
        let batch_messages = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let commit_failures = Counter::default();
        let websocket_clients = Gauge::default();
        let websocket_dropped = Counter::default();
        let pipeline_queue_depth = Gauge::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let running_clients = Gauge::default();
        let commands = Family::<StatusLabels, Counter>::default();
        registry.register(
            "commands",
            "Commands to devices that reached each status (queued, sent, delivered, confirmed, \
             failed, expired)",
            commands.clone(),
        );
        registry.register(
            "reconcile_seconds",
            "Duration of one reconcile pass (database read, diff, starts and stops)",
            reconcile_seconds.clone(),
        );
        registry.register(
            "running_clients",
            "MQTT client tasks the supervisor runs",
            running_clients.clone(),
        );
        registry.register(
            "messages_received",
            "MQTT messages received, per site",
            messages_received.clone(),
        );
        registry.register(
            "messages_processed",
            "Messages parsed and stored, per site and parser",
            messages_processed.clone(),
        );
        registry.register(
            "messages_failed",
            "Messages that became parsing-log rows, per site and parser",
            messages_failed.clone(),
        );
        registry.register(
            "reconnects",
            "Connection losses followed by a reconnect attempt, per site",
            reconnects.clone(),
        );
        registry.register(
            "acknowledgements_waiting",
            "Acknowledgements of committed messages waiting in the service for room on the \
             broker's connection, per site (grows while a broker reads them more slowly than it \
             delivers messages)",
            acknowledgements_waiting.clone(),
        );
        registry.register(
            "connection_silent",
            "1 while a connected connection has had no message for its max_silence_secs, per site",
            connection_silent.clone(),
        );
        registry.register(
            "subscriptions_refused",
            "Subscription filters the broker refused, per site",
            subscriptions_refused.clone(),
        );
        registry.register(
            "connections",
            "Supervised connections by status",
            connections.clone(),
        );
        registry.register(
            "batch_messages",
            "Messages per committed batch",
            batch_messages.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time to write and commit one batch",
            commit_seconds.clone(),
        );
        registry.register(
            "commit_failures",
            "Batch commits that failed and were retried",
            commit_failures.clone(),
        );
        registry.register(
            "websocket_clients",
            "Connected WebSocket clients",
            websocket_clients.clone(),
        );
        registry.register(
            "websocket_dropped",
            "WebSocket clients dropped for falling behind",
            websocket_dropped.clone(),
        );
        registry.register(
            "pipeline_queue_depth",
            "Messages parsed and waiting for the writer",
            pipeline_queue_depth.clone(),
        );
        Metrics {
            registry,
            messages_received,
            messages_processed,
            messages_failed,
            reconnects,
            acknowledgements_waiting,
            connection_silent,
            subscriptions_refused,
            connections,
            batch_messages,
            commit_seconds,
            commit_failures,
            websocket_clients,
            websocket_dropped,
            pipeline_queue_depth,
            reconcile_seconds,
            running_clients,
            commands,
            processed_total: AtomicU64::new(0),
            errors_total: AtomicU64::new(0),
            last_message_millis: AtomicI64::new(0),
        }
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Counts `messages` committed messages of one site and parser, `ok` or kept as parsing
    /// errors; `latest` is the newest receipt time among them. Called once per batch and kind.
    pub fn record_committed(
        &self,
        site_id: i32,
        parser: &str,
        ok: bool,
        messages: u64,
        latest: DateTime<Utc>,
    ) {
        let labels = SiteParserLabels {
            site: site_id.to_string(),
            parser: parser.to_string(),
        };
        if ok {
            self.messages_processed
                .get_or_create(&labels)
                .inc_by(messages);
            self.processed_total.fetch_add(messages, Ordering::Relaxed);
        } else {
            self.messages_failed.get_or_create(&labels).inc_by(messages);
            self.errors_total.fetch_add(messages, Ordering::Relaxed);
        }
        self.last_message_millis
            .fetch_max(latest.timestamp_millis(), Ordering::Relaxed);
    }

    /// The received-messages counter of one site; a connection task keeps it, so counting a
    /// message needs no label lookup.
    pub fn received_counter(&self, site_id: i32) -> Counter {
        of_site(&self.messages_received, site_id)
    }

    pub fn reconnects_counter(&self, site_id: i32) -> Counter {
        of_site(&self.reconnects, site_id)
    }

    pub fn acknowledgements_waiting_gauge(&self, site_id: i32) -> Gauge {
        of_site(&self.acknowledgements_waiting, site_id)
    }

    pub fn silent_gauge(&self, site_id: i32) -> Gauge {
        of_site(&self.connection_silent, site_id)
    }

    pub fn refused_subscriptions_gauge(&self, site_id: i32) -> Gauge {
        of_site(&self.subscriptions_refused, site_id)
    }

    /// A command to a device reached `status`.
    pub fn command_status(&self, status: &str) {
        self.commands
            .get_or_create(&StatusLabels {
                status: status.to_owned(),
            })
            .inc();
    }

    pub fn messages_processed_total(&self) -> u64 {
        self.processed_total.load(Ordering::Relaxed)
    }

    pub fn errors_total(&self) -> u64 {
        self.errors_total.load(Ordering::Relaxed)
    }

    pub fn last_message_time(&self) -> Option<DateTime<Utc>> {
        match self.last_message_millis.load(Ordering::Relaxed) {
            0 => None,
            millis => Utc.timestamp_millis_opt(millis).single(),
        }
    }
}
