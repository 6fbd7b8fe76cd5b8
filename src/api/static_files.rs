//! The Devices page: its HTML, style sheet and JavaScript modules compiled into the binary, so
//! the service needs nothing on disk.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

use super::error::ApiError;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");

/// `(file name, text)` of every module under `web/js/`, one per line: a module that is not
/// listed here is not served (a test compares this list with the folder).
macro_rules! embedded_modules {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../web/js/", $name)))),*]
    };
}

const MODULES: &[(&str, &str)] = embedded_modules![
    "access.js",
    "alerts.js",
    "api.js",
    "auth.js",
    "commands.js",
    "confirm.js",
    "connection-form.js",
    "connection-health.js",
    "connection-log.js",
    "device-history.js",
    "devices.js",
    "discovered.js",
    "dom.js",
    "errors-filter.js",
    "field-errors.js",
    "format.js",
    "instances.js",
    "parser-list.js",
    "parsing-errors.js",
    "pattern-form.js",
    "pattern-preview.js",
    "payload-view.js",
    "relay-switch.js",
    "sensor-chart.js",
    "settings.js",
    "site-form.js",
    "sites.js",
    "sparklines.js",
    "state.js",
    "tabs.js",
    "topic-patterns.js",
    "updates.js",
    "websocket.js",
];

/// Revalidate every time: the files change with the binary, and a stale script against a newer
/// API is worse than a conditional request.
const NO_CACHE: &str = "no-cache";

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

pub async fn index() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, NO_CACHE),
        ],
        INDEX_HTML,
    )
}

/// The entry module, which imports the others from `/js/`.
pub async fn app_js() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, JAVASCRIPT), (CACHE_CONTROL, NO_CACHE)],
        APP_JS,
    )
}

/// `GET /js/{file}`: one of the page's modules; a name not in [`MODULES`] is a 404.
pub async fn module(Path(file): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let text = find_module(&file).ok_or_else(|| {
        ApiError::not_found(format!("the Devices page has no script named '{file}'"))
    })?;
    Ok((
        [(CONTENT_TYPE, JAVASCRIPT), (CACHE_CONTROL, NO_CACHE)],
        text,
    ))
}

fn find_module(file: &str) -> Option<&'static str> {
    MODULES
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, text)| *text)
}

pub async fn style_css() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, NO_CACHE),
        ],
        STYLE_CSS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_listed_once_and_found_by_exact_name() {
        let mut names: Vec<&str> = MODULES.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MODULES.len(), "a module is listed twice");
        assert!(find_module("state.js").is_some());
        for unknown in ["", "state", "STATE.JS", "../app.js", "js/state.js"] {
            assert!(find_module(unknown).is_none(), "{unknown}");
        }
    }
}
