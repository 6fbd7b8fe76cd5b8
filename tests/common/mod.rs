//! Test harness: a fresh database per test (SQLite file, or a new PostgreSQL database when
//! TEST_DATABASE_URL points at a server), the real binary started on a free port, and an MQTT
//! publisher on the real broker of TEST_MQTT_URL.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub const BINARY: &str = env!("CARGO_BIN_EXE_mqtt-supervisor");

pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A database of its own for one test; dropped with the test's temp directory (SQLite) or left
/// for the CI machine to discard (PostgreSQL databases are cheap and uniquely named).
pub struct TestDatabase {
    pub url: String,
    pub directory: tempfile::TempDir,
}

impl TestDatabase {
    pub async fn new() -> TestDatabase {
        let directory = tempfile::tempdir().expect("temp dir");
        let url = match std::env::var("TEST_DATABASE_URL") {
            Ok(base) if base.starts_with("postgres") => {
                let name = unique_name("mqtt_supervisor_test");
                let admin = Database::connect(base.clone())
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                replace_database_name(&base, &name)
            }
            _ => format!(
                "sqlite://{}?mode=rwc",
                directory.path().join("supervisor.db").display()
            ),
        };
        TestDatabase { url, directory }
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }

    pub async fn connect(&self) -> sea_orm::DatabaseConnection {
        Database::connect(self.url.clone())
            .await
            .expect("connect to the test database")
    }
}

fn replace_database_name(url: &str, name: &str) -> String {
    let (without_query, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match without_query.rsplit_once('/') {
        Some((prefix, _)) => format!("{prefix}/{name}"),
        None => format!("{without_query}/{name}"),
    };
    match query {
        Some(query) => format!("{base}?{query}"),
        None => base,
    }
}

/// Host and port of the real broker the tests use.
pub fn broker() -> (String, u16) {
    let url = std::env::var("TEST_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into());
    let rest = url
        .trim_start_matches("mqtt://")
        .trim_start_matches("tcp://");
    let (host, port) = rest.split_once(':').unwrap_or((rest, "1883"));
    (
        host.to_string(),
        port.trim_end_matches('/').parse().unwrap_or(1883),
    )
}

/// The MQTT version the tests' connections speak: `TEST_MQTT_PROTOCOL` ("3.1.1" by default, or
/// "5"), so the same connection scenarios run on both.
pub fn protocol() -> String {
    std::env::var("TEST_MQTT_PROTOCOL").unwrap_or_else(|_| "3.1.1".into())
}

pub struct ServiceOptions {
    pub reconcile_secs: u64,
    pub token: Option<String>,
    pub extra_env: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            reconcile_secs: 30,
            token: Some("test-admin-token-0123456789".into()),
            extra_env: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// The real binary, serving on a free port.
pub struct Service {
    pub child: Child,
    pub base_url: String,
    pub token: Option<String>,
    pub log_dir: PathBuf,
    pub output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Service {
    pub fn start(database: &TestDatabase) -> Service {
        Service::start_with(database, ServiceOptions::default())
    }

    pub fn start_with(database: &TestDatabase, options: ServiceOptions) -> Service {
        let log_dir = database.directory.path().join(unique_name("logs"));
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .args(&options.args)
            .env("DATABASE_URL", &database.url)
            .env("SUPERVISOR_HTTP_ADDR", "127.0.0.1:0")
            .env(
                "SUPERVISOR_RECONCILE_SECS",
                options.reconcile_secs.to_string(),
            )
            .env("SUPERVISOR_LOG_DIR", &log_dir)
            .env(
                "SUPERVISOR_PARSERS_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/parsers"),
            )
            .env("RUST_LOG", "info")
            .env_remove("SENTRY_DSN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &options.token {
            Some(token) => {
                command.env("SUPERVISOR_ADMIN_TOKEN", token);
            }
            None => {
                command.env_remove("SUPERVISOR_ADMIN_TOKEN");
            }
        }
        for (name, value) in &options.extra_env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the mqtt-supervisor binary");
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (address_sender, address_receiver) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let stdout_lines = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("listening on ") {
                    let _ = address_sender.send(address.trim().to_string());
                }
                if let Ok(mut lines) = stdout_lines.lock() {
                    lines.push(line);
                }
            }
        });
        let stderr_lines = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("TEST_SERVICE_LOG").is_ok() {
                    eprintln!("[service] {line}");
                }
                if let Ok(mut lines) = stderr_lines.lock() {
                    lines.push(line);
                }
            }
        });
        let base_url = match address_receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let lines = output.lock().map(|l| l.join("\n")).unwrap_or_default();
                panic!("the service did not start listening within 60 s:\n{lines}");
            }
        };
        Service {
            child,
            base_url,
            token: options.token,
            log_dir,
            output,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.replacen("http://", "ws://", 1))
    }

    /// An HTTP client that sends the admin token.
    pub fn client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &self.token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client")
    }

    pub fn output(&self) -> String {
        self.output.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// SIGKILL: no chance to drain.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the service did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns Some or the timeout passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A real MQTT publisher on the test broker.
pub struct Publisher {
    pub client: rumqttc::AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Connects to the shared test broker.
    pub async fn connect() -> Publisher {
        let (host, port) = broker();
        publisher_at(&host, port).await
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("publish");
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Creates a site, its connection to the test broker (inactive unless `active`) and returns
/// (site_id, the site's topic prefix). Each test uses its own prefix so tests sharing the broker
/// never see each other's messages.
pub async fn create_site(service: &Service, active: bool) -> (i64, String) {
    let client = service.client();
    let slug = unique_name("site").replace('_', "-");
    let site: serde_json::Value = client
        .post(service.url("/api/sites"))
        .json(&serde_json::json!({"name": slug, "slug": slug}))
        .send()
        .await
        .expect("create site")
        .error_for_status()
        .expect("site created")
        .json()
        .await
        .expect("site json");
    let site_id = site["id"].as_i64().expect("site id");
    let (host, port) = broker();
    client
        .post(service.url("/api/mqtt/connections"))
        .json(&serde_json::json!({
            "site_id": site_id,
            "host": host,
            "port": port,
            "client_id": unique_name("supervisor"),
            "is_active": active,
            "protocol": protocol(),
        }))
        .send()
        .await
        .expect("create connection")
        .error_for_status()
        .expect("connection created");
    (site_id, format!("test/{slug}"))
}

pub async fn add_topic(service: &Service, site_id: i64, pattern: &str, parser: &str) -> i64 {
    let topic: serde_json::Value = service
        .client()
        .post(service.url("/api/mqtt/topics"))
        .json(&serde_json::json!({"site_id": site_id, "pattern": pattern, "parser": parser}))
        .send()
        .await
        .expect("create topic")
        .error_for_status()
        .expect("topic created")
        .json()
        .await
        .expect("topic json");
    topic["id"].as_i64().expect("topic id")
}

/// A site's connection as the API shows it; `None` while the service does not answer.
pub async fn try_connection(service: &Service, site_id: i64) -> Option<serde_json::Value> {
    service
        .client()
        .get(service.url(&format!("/api/mqtt/connection/{site_id}/")))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// A site's connection as the API shows it.
pub async fn connection(service: &Service, site_id: i64) -> serde_json::Value {
    try_connection(service, site_id)
        .await
        .unwrap_or_else(|| panic!("the connection of site {site_id}"))
}

pub async fn connection_status(service: &Service, site_id: i64) -> String {
    connection(service, site_id).await["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub async fn wait_for_status(service: &Service, site_id: i64, status: &str, timeout: Duration) {
    eventually(
        timeout,
        &format!("site {site_id} to be {status}"),
        || async { (connection_status(service, site_id).await == status).then_some(()) },
    )
    .await
}

/// A Mosquitto of the test's own, on a free port, so a test can kill it, restart it or require a
/// password without disturbing other tests. Queues are large: a stopped subscriber must not lose
/// messages to the broker's default queue limit.
pub struct PrivateBroker {
    pub port: u16,
    directory: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateBroker {
    pub fn start() -> PrivateBroker {
        PrivateBroker::start_with(None)
    }

    /// `credentials`: require this user name and password.
    pub fn start_with(credentials: Option<(&str, &str)>) -> PrivateBroker {
        PrivateBroker::start_configured(credentials, false, true)
    }

    /// A broker that speaks only TLS, with a certificate for `localhost` signed by a fresh test
    /// CA; the CA certificate is at `ca_file()`.
    pub fn start_tls() -> PrivateBroker {
        PrivateBroker::start_configured(None, true, true)
    }

    /// A TLS broker that requires a client certificate signed by its test CA; the client pairs
    /// are in `directory()`: `client-rsa.crt`/`.key` and `client-ec.crt`/`.key`.
    pub fn start_mutual_tls() -> PrivateBroker {
        let mut broker = PrivateBroker::start_configured(None, true, true);
        broker.kill();
        make_client_certificates(broker.directory.path());
        let path = broker.directory.path().join("mosquitto.conf");
        let config =
            std::fs::read_to_string(&path).expect("read config") + "require_certificate true\n";
        std::fs::write(&path, config).expect("write config");
        broker.resume();
        broker
    }

    pub fn directory(&self) -> &std::path::Path {
        self.directory.path()
    }

    /// A broker that writes everything it does to `log()`: tests read it for takeovers.
    pub fn start_logged() -> PrivateBroker {
        let mut broker = PrivateBroker::start_configured(None, false, true);
        broker.kill();
        let path = broker.directory.path().join("mosquitto.conf");
        let log = broker.directory.path().join("broker.log");
        let config = std::fs::read_to_string(&path)
            .expect("read config")
            .replace(
                "log_dest none\n",
                &format!("log_dest file {}\nlog_type all\n", log.display()),
            );
        std::fs::write(&path, config).expect("write config");
        broker.resume();
        broker
    }

    /// What a broker started with `start_logged` wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory.path().join("broker.log")).unwrap_or_default()
    }

    /// A broker that keeps nothing on disk: after a restart it remembers no session.
    pub fn start_forgetful() -> PrivateBroker {
        PrivateBroker::start_configured(None, false, false)
    }

    /// A broker with Mosquitto's dynamic-security plugin (set up with `mosquitto_ctrl`) whose
    /// clients log in as `user`/`password` and may subscribe to everything but `denied`, which it
    /// answers with 0x80.
    pub fn start_refusing(denied: &str, user: &str, password: &str) -> PrivateBroker {
        let mut broker = PrivateBroker::start_configured(None, false, true);
        broker.kill();
        let directory = broker.directory.path().to_path_buf();
        let security = directory.join("dynamic-security.json");
        let admin_password = "dynsec-admin-password";
        let output = Command::new("mosquitto_ctrl")
            .args(["dynsec", "init"])
            .arg(&security)
            .args(["admin", admin_password])
            .output()
            .expect("run mosquitto_ctrl dynsec init");
        assert!(output.status.success(), "dynsec init: {output:?}");
        let plugin = dynamic_security_plugin();
        let config = std::fs::read_to_string(directory.join("mosquitto.conf"))
            .expect("read config")
            .replace("allow_anonymous true\n", "")
            + &format!(
                "per_listener_settings false\nplugin {plugin}\nplugin_opt_config_file {}\n",
                security.display()
            );
        std::fs::write(directory.join("mosquitto.conf"), config).expect("write config");
        broker.resume();
        let port = broker.port.to_string();
        let control = |args: &[&str]| {
            let output = Command::new("mosquitto_ctrl")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-u",
                    "admin",
                    "-P",
                    admin_password,
                ])
                .arg("dynsec")
                .args(args)
                .output()
                .expect("run mosquitto_ctrl");
            assert!(
                output.status.success(),
                "mosquitto_ctrl {args:?}: {output:?}"
            );
        };
        control(&["createClient", user, "-p", password]);
        control(&["createRole", "limited"]);
        control(&[
            "addRoleACL",
            "limited",
            "subscribePattern",
            denied,
            "deny",
            "10",
        ]);
        control(&[
            "addRoleACL",
            "limited",
            "subscribePattern",
            "#",
            "allow",
            "1",
        ]);
        control(&[
            "addRoleACL",
            "limited",
            "publishClientSend",
            "#",
            "allow",
            "1",
        ]);
        control(&[
            "addRoleACL",
            "limited",
            "publishClientReceive",
            "#",
            "allow",
            "1",
        ]);
        control(&["addClientRole", user, "limited"]);
        broker
    }

    pub fn ca_file(&self) -> PathBuf {
        self.directory.path().join("ca.crt")
    }

    fn start_configured(
        credentials: Option<(&str, &str)>,
        tls: bool,
        persistence: bool,
    ) -> PrivateBroker {
        let directory = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut config = format!(
            "listener {port} 127.0.0.1\npersistence {persistence}\npersistence_location {}/\nmax_queued_messages 1000000\nmax_inflight_messages 1000\nlog_dest none\n",
            directory.path().display()
        );
        if running_as_root() {
            config.push_str("user root\n");
        }
        if tls {
            make_test_certificates(directory.path());
            let path = |name: &str| directory.path().join(name).display().to_string();
            config.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\n",
                path("ca.crt"),
                path("server.crt"),
                path("server.key")
            ));
        }
        match credentials {
            Some((user, password)) => {
                let password_file = directory.path().join("passwords");
                let status = Command::new("mosquitto_passwd")
                    .args(["-b", "-c"])
                    .arg(&password_file)
                    .args([user, password])
                    .status()
                    .expect("run mosquitto_passwd");
                assert!(status.success());
                config.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    password_file.display()
                ));
            }
            None => config.push_str("allow_anonymous true\n"),
        }
        std::fs::write(directory.path().join("mosquitto.conf"), config).expect("write config");
        let mut broker = PrivateBroker {
            port,
            directory,
            child: None,
        };
        broker.resume();
        broker
    }

    /// Starts (again) on the same port with the same persistence.
    pub fn resume(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.directory.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "private mosquitto did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: every client loses its connection at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Client certificates signed by the test CA of `directory`: one with an RSA key (PKCS#8) and
/// one with an EC key (SEC1).
fn make_client_certificates(directory: &std::path::Path) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(directory)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "client-rsa.key",
        "-out",
        "client-rsa.csr",
        "-subj",
        "/CN=supervisor-rsa",
    ]);
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "client-ec.key",
    ]);
    run(&[
        "req",
        "-new",
        "-key",
        "client-ec.key",
        "-out",
        "client-ec.csr",
        "-subj",
        "/CN=supervisor-ec",
    ]);
    // X.509 v3 with the client-authentication usage, as a real CA issues them.
    std::fs::write(
        directory.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )
    .expect("write client.ext");
    for name in ["client-rsa", "client-ec"] {
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            "client.ext",
        ]);
    }
}

/// Where Debian (or another layout) keeps Mosquitto's dynamic-security plugin.
fn dynamic_security_plugin() -> String {
    [
        "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
        "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
        "/usr/lib/mosquitto_dynamic_security.so",
        "/usr/local/lib/mosquitto_dynamic_security.so",
    ]
    .into_iter()
    .find(|path| std::path::Path::new(path).exists())
    .expect("Mosquitto's dynamic-security plugin (Debian package mosquitto)")
    .to_string()
}

/// A throw-away CA and a server certificate for localhost/127.0.0.1, made with openssl.
fn make_test_certificates(directory: &std::path::Path) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(directory)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    std::fs::write(
        directory.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write extension file");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=mqtt-supervisor test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// Inserts a site and its connection straight into the database (as an operator editing rows
/// by hand would) and returns (site_id, connection_id).
pub async fn insert_site(
    db: &sea_orm::DatabaseConnection,
    port: u16,
    active: bool,
    credentials: Option<(&str, &str)>,
) -> (i32, i32) {
    let seeded = seed_test_site(db, port, active, credentials, &[]).await;
    (seeded.site_id, seeded.connection_id)
}

/// A uniquely named site on the broker at `port` with `patterns` as (pattern, parser), through
/// the same seeding the demo and the benchmark use.
pub async fn seed_test_site(
    db: &sea_orm::DatabaseConnection,
    port: u16,
    active: bool,
    credentials: Option<(&str, &str)>,
    patterns: &[(&str, &str)],
) -> mqtt_supervisor::seed::SeededSite {
    use mqtt_supervisor::seed::{seed_site, PatternSeed, SiteSeed};
    let slug = unique_name("site").replace('_', "-");
    let mut site = SiteSeed::new(&slug, "127.0.0.1", port);
    site.client_id = unique_name("supervisor");
    site.credentials = credentials.map(|(user, password)| (user.to_string(), password.to_string()));
    site.keepalive_secs = 10;
    site.protocol = protocol();
    site.connection_active = active;
    site.patterns = patterns
        .iter()
        .map(|(pattern, parser)| PatternSeed::active(pattern, parser))
        .collect();
    seed_site(db, &site).await.expect("seed the site")
}

pub async fn insert_topic(
    db: &sea_orm::DatabaseConnection,
    site_id: i32,
    pattern: &str,
    parser: &str,
) -> i32 {
    use mqtt_supervisor::entity::mqtt_topic;
    use sea_orm::{ActiveModelTrait, Set};
    let now = chrono::Utc::now();
    mqtt_topic::ActiveModel {
        site_id: Set(site_id),
        pattern: Set(pattern.into()),
        parser: Set(parser.into()),
        qos: Set(1),
        is_active: Set(true),
        priority: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert topic")
    .id
}

/// Switches a connection on or off in the database, as an operator editing the row would.
pub async fn set_active(db: &sea_orm::DatabaseConnection, connection_id: i32, active: bool) {
    use mqtt_supervisor::entity::mqtt_connection;
    use sea_orm::{ActiveModelTrait, Set};
    mqtt_connection::ActiveModel {
        id: Set(connection_id),
        is_active: Set(active),
        ..Default::default()
    }
    .update(db)
    .await
    .expect("switch the connection");
}

pub async fn row_status(
    db: &sea_orm::DatabaseConnection,
    connection_id: i32,
) -> (String, Option<String>) {
    use mqtt_supervisor::entity::mqtt_connection;
    use sea_orm::EntityTrait;
    let row = mqtt_connection::Entity::find_by_id(connection_id)
        .one(db)
        .await
        .expect("read connection")
        .expect("connection exists");
    (row.status, row.last_error)
}

pub async fn wait_for_row_status(
    db: &sea_orm::DatabaseConnection,
    connection_id: i32,
    status: &str,
    timeout: Duration,
) -> Option<String> {
    eventually(
        timeout,
        &format!("connection {connection_id} to be {status}"),
        || async {
            let (current, error) = row_status(db, connection_id).await;
            (current == status).then_some(error)
        },
    )
    .await
}

/// A publisher on a private broker of this machine.
pub async fn publisher_on(port: u16) -> Publisher {
    publisher_at("127.0.0.1", port).await
}

pub async fn publisher_at(host: &str, port: u16) -> Publisher {
    publisher_logged_in(host, port, None).await
}

/// A publisher that logs in with (user name, password) when given.
pub async fn publisher_logged_in(
    host: &str,
    port: u16,
    credentials: Option<(&str, &str)>,
) -> Publisher {
    let mut options = rumqttc::MqttOptions::new(unique_name("publisher"), host, port);
    if let Some((user, password)) = credentials {
        options.set_credentials(user, password);
    }
    options.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(1000);
    let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 10_000);
    let (ready_sender, ready_receiver) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_sender);
        loop {
            match event_loop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_receiver)
        .await
        .expect("publisher connects")
        .expect("publisher task alive");
    Publisher { client, task }
}

/// Writes a config file for the service (merged over the defaults) and returns the arguments.
pub fn config_args(directory: &std::path::Path, toml: &str) -> Vec<String> {
    let path = directory.join(unique_name("config") + ".toml");
    std::fs::write(&path, toml).expect("write config");
    vec!["--config".into(), path.display().to_string()]
}

/// A TCP proxy in front of the database, so a test can take the database away (every open
/// connection cut, new ones refused) and bring it back, over real sockets.
pub struct TcpProxy {
    pub port: u16,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(target: String) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let paused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept_paused = paused.clone();
        let accept_connections = connections.clone();
        let accept_task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if accept_paused.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut connections) = accept_connections.lock() {
                    connections.push(task.abort_handle());
                }
            }
        });
        TcpProxy {
            port,
            paused,
            connections,
            accept_task,
        }
    }

    /// Cuts every connection and refuses new ones until `resume`.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        if let Ok(mut connections) = self.connections.lock() {
            for connection in connections.drain(..) {
                connection.abort();
            }
        }
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.pause();
    }
}

/// The database URL with its host and port replaced by the proxy's.
pub fn through_proxy(url: &str, proxy_port: u16) -> String {
    let mut parsed = url::Url::parse(url).expect("database url");
    parsed.set_host(Some("127.0.0.1")).expect("host");
    parsed.set_port(Some(proxy_port)).expect("port");
    parsed.to_string()
}

/// A site ingesting from a private broker: the service started, the site's connection
/// `connected` with its patterns subscribed, and a publisher on the same broker.
pub struct IngestingSite {
    pub broker: PrivateBroker,
    pub service: Service,
    pub db: sea_orm::DatabaseConnection,
    pub site_id: i32,
    pub connection_id: i32,
    pub publisher: Publisher,
}

pub async fn ingesting_site(
    database: &TestDatabase,
    options: ServiceOptions,
    patterns: &[(&str, &str)],
) -> IngestingSite {
    let broker = PrivateBroker::start();
    let service = Service::start_with(database, options);
    let db = database.connect().await;
    let seeded = seed_test_site(&db, broker.port, true, None, patterns).await;
    let (site_id, connection_id) = (seeded.site_id, seeded.connection_id);
    wait_for_row_status(&db, connection_id, "connected", Duration::from_secs(10)).await;
    // The subscription follows the connect: publish only once the broker granted it.
    wait_for_granted(&db, connection_id).await;
    let publisher = publisher_on(broker.port).await;
    IngestingSite {
        broker,
        service,
        db,
        site_id,
        connection_id,
        publisher,
    }
}

/// The subscriptions of a connection as its row last stored them: (filter, state).
pub async fn stored_subscriptions(
    db: &sea_orm::DatabaseConnection,
    connection_id: i32,
) -> Vec<(String, String)> {
    use mqtt_supervisor::entity::mqtt_connection;
    use sea_orm::EntityTrait;
    let row = mqtt_connection::Entity::find_by_id(connection_id)
        .one(db)
        .await
        .expect("read connection")
        .expect("connection exists");
    row.subscriptions
        .and_then(|value| value.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|subscription| {
            (
                subscription["filter"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                subscription["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// Waits until the broker has answered every subscription of the connection with a grant (and
/// there is at least one): from then on, what is published on those filters reaches the service.
pub async fn wait_for_granted(db: &sea_orm::DatabaseConnection, connection_id: i32) {
    eventually(
        Duration::from_secs(15),
        &format!("the subscriptions of connection {connection_id} to be granted"),
        || async {
            let subscriptions = stored_subscriptions(db, connection_id).await;
            (!subscriptions.is_empty() && subscriptions.iter().all(|(_, state)| state == "granted"))
                .then_some(())
        },
    )
    .await
}

/// Waits, through the API, until the site's subscriptions are as `done` wants them.
async fn wait_for_subscriptions(
    service: &Service,
    site_id: i64,
    what: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) {
    let done = &done;
    eventually(Duration::from_secs(15), what, || async move {
        let connection = try_connection(service, site_id).await?;
        done(connection["subscriptions"].as_array()?).then_some(())
    })
    .await
}

/// As [`wait_for_granted`], through the API: for tests that hold no database handle.
pub async fn wait_for_granted_via_api(service: &Service, site_id: i64) {
    wait_for_subscriptions(
        service,
        site_id,
        &format!("the subscriptions of site {site_id} to be granted"),
        |subscriptions| {
            !subscriptions.is_empty()
                && subscriptions
                    .iter()
                    .all(|subscription| subscription["state"] == "granted")
        },
    )
    .await
}

/// Waits, through the API, until the broker granted `filter` to the site's connection.
pub async fn wait_for_granted_via_api_filter(service: &Service, site_id: i64, filter: &str) {
    wait_for_subscriptions(
        service,
        site_id,
        &format!("{filter} to be granted to site {site_id}"),
        |subscriptions| {
            subscriptions.iter().any(|subscription| {
                subscription["filter"] == filter && subscription["state"] == "granted"
            })
        },
    )
    .await
}

/// One value of a metric in the service's `/metrics` text (summed over its label sets that
/// contain every pair of `labels`), or 0 when absent.
pub async fn metric(service: &Service, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = reqwest::get(service.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, label_text) = match series.split_once('{') {
                Some((metric_name, rest)) => (metric_name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric_name != name {
                return None;
            }
            let all_match = labels
                .iter()
                .all(|(key, wanted)| label_text.contains(&format!("{key}=\"{wanted}\"")));
            all_match.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Waits until the service has committed everything it received: its queue is empty and its
/// received, processed and failed counters stay the same over two reads. A test
/// asserting that nothing more arrives then asserts a settled state instead of waiting and
/// hoping.
pub async fn wait_until_settled(service: &Service) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut previous = None;
    loop {
        let queued = metric(service, "mqtt_supervisor_pipeline_queue_depth", &[]).await;
        let received = metric(service, "mqtt_supervisor_messages_received_total", &[]).await;
        let processed = metric(service, "mqtt_supervisor_messages_processed_total", &[]).await;
        let failed = metric(service, "mqtt_supervisor_messages_failed_total", &[]).await;
        let now = Some((queued, received, processed, failed));
        if queued == 0.0 && previous == now {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the pipeline did not settle within 30 s (queued {queued}, received {received})"
        );
        previous = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A minimal HTTP endpoint that stores every request body (Sentry envelopes) it receives.
pub async fn envelope_sink() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stored = bodies.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let stored = stored.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(read) = tokio::io::AsyncReadExt::read(&mut stream, &mut chunk).await
                    else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    let Some(header_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..header_end]
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())
                                .flatten()
                        })
                        .unwrap_or(0);
                    if buffer.len() >= header_end + 4 + length {
                        let body = String::from_utf8_lossy(
                            &buffer[header_end + 4..header_end + 4 + length],
                        )
                        .to_string();
                        if let Ok(mut bodies) = stored.lock() {
                            bodies.push(body);
                        }
                        let _ = tokio::io::AsyncWriteExt::write_all(
                            &mut stream,
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                            .await;
                        buffer.clear();
                    }
                }
            });
        }
    });
    (port, bodies)
}

/// `POST /api/sites/{site_id}/commands` with the admin token (and an `Idempotency-Key`):
/// the status and the JSON answer.
pub async fn post_command(
    service: &Service,
    site_id: i64,
    body: serde_json::Value,
    idempotency_key: Option<&str>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut request = service
        .client()
        .post(service.url(&format!("/api/sites/{site_id}/commands")))
        .json(&body);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("post the command");
    let status = response.status();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// `GET /api/commands/{id}`.
pub async fn command(service: &Service, id: i64) -> serde_json::Value {
    service
        .client()
        .get(service.url(&format!("/api/commands/{id}")))
        .send()
        .await
        .expect("get the command")
        .json()
        .await
        .expect("command json")
}

/// The command once it reaches `status`, within `timeout`.
pub async fn wait_for_command(
    service: &Service,
    id: i64,
    status: &str,
    timeout: Duration,
) -> serde_json::Value {
    eventually(timeout, &format!("command {id} {status}"), || async {
        let command = command(service, id).await;
        (command["status"] == status).then_some(command)
    })
    .await
}
