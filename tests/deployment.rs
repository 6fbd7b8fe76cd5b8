//! The container files agree with the binary: environment variables it reads, the port it listens
//! on, the health path it serves and the paths the image copies.

use std::path::Path;

use mqtt_supervisor::config::{Config, ENVIRONMENT_KEYS};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn known_variable(name: &str) -> bool {
    name == "RUST_LOG"
        || ENVIRONMENT_KEYS
            .iter()
            .any(|(variable, _)| *variable == name)
}

/// `KEY: value` lines inside the supervisor service's `environment:` block.
fn compose_supervisor_environment(compose: &str) -> Vec<(String, String)> {
    compose_service_environment(compose, "supervisor")
}

/// `KEY: value` lines inside one service's `environment:` block.
fn compose_service_environment(compose: &str, service: &str) -> Vec<(String, String)> {
    let mut in_supervisor = false;
    let mut in_environment = false;
    let mut variables = Vec::new();
    for line in compose.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if indent == 2 && trimmed.ends_with(':') {
            in_supervisor = trimmed == format!("{service}:");
            in_environment = false;
            continue;
        }
        if !in_supervisor {
            continue;
        }
        if indent == 4 {
            in_environment = trimmed == "environment:";
            continue;
        }
        if in_environment && indent == 6 {
            if let Some((name, value)) = trimmed.split_once(':') {
                variables.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
    }
    variables
}

#[test]
fn compose_sets_only_variables_the_binary_reads() {
    let compose = read("podman-compose.yml");
    let variables = compose_supervisor_environment(&compose);
    assert!(variables.len() >= 5, "found {variables:?}");
    for (name, _) in &variables {
        assert!(
            known_variable(name),
            "podman-compose.yml sets {name}, which the binary ignores"
        );
    }
    for required in [
        "DATABASE_URL",
        "SUPERVISOR_ADMIN_TOKEN",
        "SUPERVISOR_HTTP_ADDR",
    ] {
        assert!(
            variables.iter().any(|(name, _)| name == required),
            "{required} missing"
        );
    }
}

#[test]
fn compose_values_are_valid_configuration() {
    let compose = read("podman-compose.yml");
    let variables = compose_supervisor_environment(&compose);
    let value = |name: &str| {
        variables
            .iter()
            .find(|(variable, _)| variable == name)
            .map(|(_, value)| value.trim_matches('"').to_string())
    };
    let config = Config::load_with_env(None, |name| match name {
        // Interpolated secrets: any non-empty value stands in.
        "SUPERVISOR_ADMIN_TOKEN" => Some("a-token-of-twenty-four-characters".into()),
        "SENTRY_DSN" => None,
        other => value(other),
    })
    .expect("the compose environment is a valid configuration");
    let port = config.http.addr.port();
    assert!(
        compose.contains(&format!("\"{port}:{port}\"")),
        "port {port} is not published"
    );
    assert!(config.database.url.starts_with("postgres://"));
    assert!(compose.contains("http://127.0.0.1:8080/health/ready"));
    assert!(
        compose.contains("condition: service_healthy"),
        "the supervisor waits for the database"
    );
}

#[test]
fn containerfile_matches_the_binary() {
    let containerfile = read("Containerfile");
    for line in containerfile.lines() {
        let trimmed = line.trim().trim_end_matches('\\').trim();
        let assignment = trimmed.strip_prefix("ENV ").unwrap_or(trimmed);
        if let Some((name, _)) = assignment.split_once('=') {
            if name.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !name.is_empty() {
                assert!(
                    known_variable(name),
                    "Containerfile sets {name}, which the binary ignores"
                );
            }
        }
    }
    assert!(containerfile.contains("SUPERVISOR_HTTP_ADDR=0.0.0.0:8080"));
    assert!(containerfile.contains("EXPOSE 8080"));
    assert!(containerfile.contains("http://127.0.0.1:8080/health/ready"));
    assert!(
        containerfile.contains("USER supervisor"),
        "runs as non-root"
    );
    assert!(containerfile.contains("--bin mqtt-supervisor"));
    for copied in ["parsers", "config"] {
        assert!(containerfile.contains(&format!("COPY {copied} ")));
        assert!(
            Path::new(ROOT).join(copied).is_dir(),
            "{copied}/ is copied but missing"
        );
    }
}

#[test]
fn the_compose_broker_does_not_drop_messages_for_a_slow_subscriber() {
    let compose = read("podman-compose.yml");
    assert!(compose.contains("./deploy/mosquitto.conf:/mosquitto/config/mosquitto.conf"));
    let broker = read("deploy/mosquitto.conf");
    let setting = |name: &str| {
        broker
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} is not set"))
    };
    assert!(setting("max_queued_messages ") >= 100_000);
    assert!(setting("max_inflight_messages ") >= 100);
}

#[test]
fn compose_runs_two_replicas_on_one_database_with_their_own_names() {
    let compose = read("podman-compose.yml");
    let first = compose_service_environment(&compose, "supervisor");
    let second = compose_service_environment(&compose, "supervisor-b");
    let value = |variables: &[(String, String)], name: &str| {
        variables
            .iter()
            .find(|(variable, _)| variable == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    for (name, _) in &second {
        assert!(
            known_variable(name),
            "supervisor-b sets {name}, which the binary ignores"
        );
    }
    assert_eq!(
        value(&first, "DATABASE_URL"),
        value(&second, "DATABASE_URL")
    );
    assert!(value(&first, "DATABASE_URL").starts_with("postgres://"));
    assert_ne!(
        value(&first, "SUPERVISOR_INSTANCE_ID"),
        value(&second, "SUPERVISOR_INSTANCE_ID")
    );
}
