//! The processes of a run: a tuned Mosquitto, the service under test, and the CPU each uses.

use super::*;

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// Mosquitto tuned as docs/deployment.md recommends: a large in-flight window and queue.
pub(crate) struct Broker {
    pub(crate) port: u16,
    pub(crate) child: Child,
    pub(crate) _directory: tempfile::TempDir,
}

impl Broker {
    pub(crate) fn start(inflight: u16) -> Broker {
        let directory = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages {inflight}\nmax_queued_messages 10000000\nlog_dest none\n{}",
            if running_as_root() { "user root\n" } else { "" }
        );
        let path = directory.path().join("mosquitto.conf");
        std::fs::write(&path, config).expect("write config");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            port,
            child,
            _directory: directory,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of a set of processes, from /proc; Linux only, zero elsewhere.
pub(crate) fn cpu_seconds(pids: &[u32]) -> f64 {
    // Kernel clock ticks; 100 per second on every Linux this runs on.
    const TICKS_PER_SECOND: f64 = 100.0;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name, which is in parentheses and may contain spaces.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / TICKS_PER_SECOND)
        })
        .sum()
}

/// Every process of one program name (e.g. all PostgreSQL backends).
pub(crate) fn pids_named(name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|comm| comm.trim() == name)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// CPU used by each party of the run: where the machine's two cores went.
pub(crate) struct CpuUse {
    pub(crate) service: f64,
    pub(crate) broker: f64,
    pub(crate) database: f64,
    pub(crate) publisher: f64,
}

impl CpuUse {
    pub(crate) fn now(service: u32, broker: u32) -> CpuUse {
        CpuUse {
            service: cpu_seconds(&[service]),
            broker: cpu_seconds(&[broker]),
            database: cpu_seconds(&pids_named("postgres")),
            publisher: cpu_seconds(&[std::process::id()]),
        }
    }

    pub(crate) fn since(&self, earlier: &CpuUse) -> CpuUse {
        CpuUse {
            service: self.service - earlier.service,
            broker: self.broker - earlier.broker,
            database: self.database - earlier.database,
            publisher: self.publisher - earlier.publisher,
        }
    }
}

pub(crate) struct Service {
    pub(crate) child: Child,
    pub(crate) base_url: String,
}

impl Service {
    pub(crate) fn start(
        database_url: &str,
        log_dir: &std::path::Path,
        config: Option<&str>,
    ) -> Service {
        Service::start_with_env(database_url, log_dir, config, &[])
    }

    /// As `start`, with more environment (an instance id, a lease time).
    pub(crate) fn start_with_env(
        database_url: &str,
        log_dir: &std::path::Path,
        config: Option<&str>,
        environment: &[(&str, String)],
    ) -> Service {
        let mut command = Command::new(BINARY);
        for (name, value) in environment {
            command.env(name, value);
        }
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("SUPERVISOR_HTTP_ADDR", "127.0.0.1:0")
            .env("SUPERVISOR_ADMIN_TOKEN", TOKEN)
            .env("SUPERVISOR_RECONCILE_SECS", "1")
            .env("SUPERVISOR_LOG_DIR", log_dir)
            .env(
                "SUPERVISOR_PARSERS_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/parsers"),
            )
            // BENCH_SERVICE_LOG=FILTER shows the service's own log (on stderr) for profiling.
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(if std::env::var("BENCH_SERVICE_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start service");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base_url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(address) = line.strip_prefix("listening on ") {
                        break address.trim().to_string();
                    }
                }
                _ => panic!("service exited before listening"),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Service { child, base_url }
    }

    /// GET a JSON document of the API with the benchmark's token.
    pub(crate) async fn api(&self, path: &str) -> serde_json::Value {
        let client = reqwest::Client::new();
        let Ok(response) = client
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(TOKEN)
            .send()
            .await
        else {
            return serde_json::Value::Null;
        };
        response.json().await.unwrap_or(serde_json::Value::Null)
    }

    pub(crate) fn rss_megabytes(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|kilobytes| kilobytes / 1024.0)
            .unwrap_or(0.0)
    }

    /// One metric from /metrics, summed over its labelled series; 0 when it is missing or the
    /// service does not answer.
    pub(crate) async fn metric(&self, name: &str) -> f64 {
        let Ok(response) = reqwest::get(format!("{}/metrics", self.base_url)).await else {
            return 0.0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|line| {
                line.starts_with(name)
                    && matches!(line.as_bytes().get(name.len()), Some(b'{' | b' '))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The writer's batch counters, to tell the batches of one part of the run.
pub(crate) struct Batching {
    pub(crate) batches: f64,
    pub(crate) messages: f64,
    pub(crate) commit_seconds: f64,
}

impl Batching {
    pub(crate) async fn read(service: &Service) -> Batching {
        Batching {
            batches: service.metric("mqtt_supervisor_batch_messages_count").await,
            messages: service.metric("mqtt_supervisor_batch_messages_sum").await,
            commit_seconds: service.metric("mqtt_supervisor_commit_seconds_sum").await,
        }
    }
}

pub(crate) fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}
