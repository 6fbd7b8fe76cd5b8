//! `mqtt-supervisor serve`: migrate, then run the supervisor, the pipeline writer, the jobs and the
//! HTTP server until SIGINT/SIGTERM.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::cli::ServeArgs;
use crate::cluster::{
    self, hold_single_instance, ClusterControl, ClusterHandle, LeaseContext, Notifier,
    SingleInstanceError, SingleInstanceGuard,
};
use crate::config::Config;
use crate::connection::ConnectionContext;
use crate::db::DatabaseProbe;
use crate::events::Hub;
use crate::jobs::{JobBoard, JobsContext};
use crate::metrics::Metrics;
use crate::parsers::{ParserStore, Registry};
use crate::pipeline::{spawn_writer, Limits, WriterContext};
use crate::secrets::{self, Secrets};
use crate::state::AppState;
use crate::supervisor::{SupervisorContext, SupervisorHandle};
use crate::{api, db, jobs, shutdown, supervisor, telemetry};

pub async fn run(config: Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if !config.auth_enabled() && !args.insecure_no_auth {
        eprintln!(
            "mqtt-supervisor: no admin token: set SUPERVISOR_ADMIN_TOKEN (or api.admin_token), or pass --insecure-no-auth to serve without authentication"
        );
        return Ok(ExitCode::from(2));
    }
    let _telemetry = telemetry::init(&config)?;
    let token = CancellationToken::new();
    shutdown::cancel_on_signal(token.clone());
    let listener = tokio::net::TcpListener::bind(config.http.addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (http.addr / SUPERVISOR_HTTP_ADDR)",
                config.http.addr
            )
        })?;
    let single = match claim_database(&config) {
        Ok(single) => single,
        Err(error) => {
            eprintln!("mqtt-supervisor: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let started = match start(config, token, single).await {
        Ok(started) => started,
        // The key does not open what is stored: the operator's to fix, like a bad setting.
        Err(error)
            if error
                .downcast_ref::<secrets::SealError>()
                .is_some_and(secrets::SealError::is_key_problem) =>
        {
            eprintln!("mqtt-supervisor: {error}");
            return Ok(ExitCode::from(2));
        }
        Err(error) => return Err(error),
    };
    serve_http(started, listener).await
}

/// What `start` made: the shared state, and what only `serve_http` needs.
pub struct Started {
    pub state: AppState,
    cluster: ClusterControl,
    _single: Option<SingleInstanceGuard>,
}

/// On SQLite, this process's claim on the database file: a second instance is refused (exit 2)
/// with the first one's name. PostgreSQL is shared through leases instead.
pub fn claim_database(config: &Config) -> Result<Option<SingleInstanceGuard>, SingleInstanceError> {
    match db::sqlite_file_path(&config.database.url) {
        Some(path) => hold_single_instance(&path, &config.supervisor.instance_id()).map(Some),
        None => Ok(None),
    }
}

/// Opens the database, applies migrations, loads parsers and builds the shared state.
pub async fn start(
    config: Config,
    token: CancellationToken,
    single: Option<SingleInstanceGuard>,
) -> anyhow::Result<Started> {
    if !config.auth_enabled() {
        tracing::warn!("serving WITHOUT authentication (--insecure-no-auth): anyone who reaches the port can change connections");
    }
    let connection = connect_patiently(&config, &token).await?;
    db::migrate_up(&connection).await?;
    // The configuration was checked already, so the key parses.
    let secrets = Secrets::from_base64(&config.secrets.key)?;
    let plain = secrets::check_stored_passwords(&connection, &secrets).await?;
    if secrets.has_key() {
        let sealed = secrets::reseal_stored_passwords(&connection, &secrets, &secrets).await?;
        if sealed > 0 {
            tracing::info!(
                sealed,
                "sealed broker passwords stored before SUPERVISOR_SECRET_KEY was set"
            );
        }
    } else if plain > 0 {
        tracing::warn!(
            plain,
            "broker passwords are stored in plain text: set SUPERVISOR_SECRET_KEY (32 bytes, \
             base64) to store them sealed"
        );
    }
    let registry = match Registry::load(&config.pipeline.parsers_dir) {
        Ok(registry) => registry,
        Err(errors) => {
            for error in &errors {
                tracing::error!(target: telemetry::PARSING_TARGET, "parser not loaded: {error}");
            }
            tracing::error!(target: telemetry::PARSING_TARGET, "starting with the built-in parsers only; run `mqtt-supervisor check-parsers` for details");
            Registry::builtin()
        }
    };
    let instance_id = config.supervisor.instance_id();
    let notifier = Notifier::new(&connection, &instance_id);
    let shared = !db::is_sqlite(&connection);
    let (cluster, control) = ClusterHandle::new(
        instance_id,
        Duration::from_secs(config.supervisor.lease_secs),
        shared,
        notifier,
    );
    let state = AppState {
        config: Arc::new(config),
        db: connection,
        database: DatabaseProbe::new(),
        parsers: ParserStore::new(registry),
        hub: Hub::new(1024),
        supervisor: SupervisorHandle::new(cluster),
        metrics: Arc::new(Metrics::new()),
        jobs: JobBoard::default(),
        shutdown: token,
        secrets,
    };
    Ok(Started {
        state,
        cluster: control,
        _single: single,
    })
}

/// A database that is still starting (as in a fresh compose stack) is waited for, not fatal.
async fn connect_patiently(
    config: &Config,
    token: &CancellationToken,
) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(config.database.connect_wait_secs);
    loop {
        match db::connect(&config.database.url, config.database.max_connections).await {
            Ok(connection) => return Ok(connection),
            Err(error @ db::DbError::Connect { .. }) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%error, "database not reachable yet; retrying in 2 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = token.cancelled() => return Err(error.into()),
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Runs every task until the shutdown token fires, then drains them in order: HTTP stops
/// accepting, clients disconnect, the writer commits what it holds.
pub async fn serve_http(
    started: Started,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<ExitCode> {
    let Started {
        state,
        cluster: cluster_control,
        _single,
    } = started;
    let config = &state.config;
    let address = listener.local_addr()?;
    tokio::spawn(
        state
            .database
            .clone()
            .run(state.db.clone(), state.shutdown.clone()),
    );
    let cluster = state.supervisor.cluster().clone();
    let (writer, writer_task) = spawn_writer(WriterContext {
        db: state.db.clone(),
        hub: state.hub.clone(),
        metrics: state.metrics.clone(),
        config: config.pipeline.clone(),
        parsing_error_events_per_minute: config.sentry.parsing_error_events_per_minute,
        shutdown: state.shutdown.clone(),
    });
    let connections = ConnectionContext {
        db: state.db.clone(),
        hub: state.hub.clone(),
        metrics: state.metrics.clone(),
        parsers: state.parsers.clone(),
        live: state.supervisor.live_connections(),
        writer,
        limits: Limits {
            max_payload_bytes: config.pipeline.max_payload_bytes,
            sample_bytes: config.pipeline.sample_bytes,
        },
        reconnect: Backoff::new(
            Duration::from_millis(config.supervisor.backoff_initial_ms),
            Duration::from_secs(config.supervisor.backoff_max_secs),
        ),
        inflight: config.supervisor.inflight,
        alert_after: Duration::from_secs(config.sentry.alert_after_secs),
        instance_id: cluster.instance_id.clone(),
        commands: state.supervisor.command_bell(),
        replies: state.supervisor.reply_watch(),
    };
    let (running_sender, running_receiver) = watch::channel(BTreeSet::new());
    let supervisor_task = tokio::spawn(supervisor::run(SupervisorContext {
        db: state.db.clone(),
        handle: state.supervisor.clone(),
        metrics: state.metrics.clone(),
        reconcile_every: Duration::from_secs(config.supervisor.reconcile_secs),
        connections,
        allowed: cluster.allowed.clone(),
        running: running_sender,
        shutdown: state.shutdown.clone(),
        secrets: state.secrets.clone(),
    }));
    // The lease manager learns of new browsers at once, so other instances start forwarding
    // their events to this one without waiting for a heartbeat.
    let clients_changed = state.hub.clients_changed();
    let wake_leases = cluster.wake_leases.clone();
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = clients_changed.notified() => wake_leases.notify_one(),
            }
        }
    });
    let lease_task = tokio::spawn(cluster::run_leases(LeaseContext {
        db: state.db.clone(),
        instance_id: cluster.instance_id.clone(),
        http_addr: address.to_string(),
        lease: cluster.lease,
        shared: cluster.shared,
        control: cluster_control,
        view: cluster.leases.clone(),
        notifier: cluster.notifier.clone(),
        wake: cluster.wake_leases.clone(),
        running: running_receiver,
        hub: state.hub.clone(),
        shutdown: state.shutdown.clone(),
    }));
    tokio::spawn(cluster::listen(
        cluster.notifier.clone(),
        state.supervisor.local_wake(),
        cluster.wake_leases.clone(),
        state.supervisor.command_bell(),
        state.supervisor.reply_watch(),
        state.hub.clone(),
        state.shutdown.clone(),
    ));
    tokio::spawn(cluster::run_relay(
        cluster.notifier.clone(),
        state.hub.clone(),
        state.shutdown.clone(),
    ));
    let scheduler = jobs::start(JobsContext {
        db: state.db.clone(),
        hub: state.hub.clone(),
        config: config.jobs.clone(),
        board: state.jobs.clone(),
    })
    .await?;
    tracing::info!(%address, instance = &*cluster.instance_id, "HTTP API and Devices page listening");
    println!("listening on http://{address}");
    let token = state.shutdown.clone();
    let router = api::router(state.clone());
    let server =
        axum::serve(listener, router).with_graceful_shutdown(token.clone().cancelled_owned());
    if let Err(error) = server.await {
        tracing::error!(%error, "HTTP server failed");
        token.cancel();
    }
    token.cancel();
    // Clients stop first, then the leases are given back (so another instance takes over at
    // once), and the writer commits what it holds.
    let drained = tokio::time::timeout(Duration::from_secs(25), async {
        let _ = supervisor_task.await;
        let _ = lease_task.await;
        let _ = writer_task.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("tasks did not finish within 25 s of shutdown");
    }
    jobs::stop(scheduler).await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
