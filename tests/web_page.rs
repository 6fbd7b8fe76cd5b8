//! The Devices page's files as the binary serves them: every JavaScript file under `web/` is
//! embedded and served as JavaScript without a token, and every module it imports (and every
//! script the HTML loads) is a file the binary serves, so a module left out of the embedded
//! list fails here rather than in a browser.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{Service, TestDatabase};
use reqwest::StatusCode;
use serde_json::Value;

fn web_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Every `.js` file under `web/`, keyed by the URL path it must be served at.
fn scripts_on_disk() -> BTreeMap<String, String> {
    fn walk(folder: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(folder).expect("read web folder") {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|extension| extension == "js") {
                found.push(path);
            }
        }
    }
    let root = web_folder();
    let mut found = Vec::new();
    walk(&root, &mut found);
    found
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&root).expect("under web/");
            let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
            let text = std::fs::read_to_string(&path).expect("read script");
            (url, text)
        })
        .collect()
}

/// The module specifiers of `import … from '…'`, `export … from '…'`, `import '…'` and
/// `import('…')` in a script.
fn import_specifiers(source: &str) -> Vec<String> {
    let mut specifiers = Vec::new();
    for keyword in ["from", "import"] {
        let mut rest = source;
        while let Some(at) = rest.find(keyword) {
            let before = source.len() - rest.len() + at;
            let preceded_by_word = source[..before]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
            rest = &rest[at + keyword.len()..];
            if preceded_by_word {
                continue;
            }
            let mut after = rest.trim_start();
            if keyword == "import" {
                if let Some(inside) = after.strip_prefix('(') {
                    after = inside.trim_start();
                }
            }
            let Some(quote) = after.chars().next().filter(|c| matches!(c, '\'' | '"')) else {
                continue;
            };
            if let Some(end) = after[1..].find(quote) {
                specifiers.push(after[1..1 + end].to_string());
            }
        }
    }
    specifiers
}

/// A relative or absolute specifier resolved against the URL path of the script naming it;
/// `None` for a bare specifier, which a browser cannot load without an import map.
fn resolve(base: &str, specifier: &str) -> Option<String> {
    let joined = if specifier.starts_with('/') {
        specifier.to_string()
    } else if specifier.starts_with("./") || specifier.starts_with("../") {
        let folder = &base[..=base.rfind('/').expect("absolute base")];
        format!("{folder}{specifier}")
    } else {
        return None;
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in joined.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    Some(format!("/{}", segments.join("/")))
}

#[test]
fn specifiers_are_found_and_resolved() {
    let source = "// Loads modules.\nimport { a } from './a.js';\nimport {\n  b,\n} from \"../b.js\";\n\
                  export { c } from './sub/c.js';\nimport './d.js';\nconst e = await import('./e.js');\n\
                  const text = 'comes from here'; reimport('./no.js');";
    assert_eq!(
        import_specifiers(source),
        ["./a.js", "../b.js", "./sub/c.js", "./d.js", "./e.js"]
    );
    assert_eq!(
        resolve("/app.js", "./js/state.js").as_deref(),
        Some("/js/state.js")
    );
    assert_eq!(
        resolve("/js/sites.js", "./dom.js").as_deref(),
        Some("/js/dom.js")
    );
    assert_eq!(
        resolve("/js/sites.js", "../app.js").as_deref(),
        Some("/app.js")
    );
    assert_eq!(
        resolve("/js/sites.js", "/style.css").as_deref(),
        Some("/style.css")
    );
    assert_eq!(resolve("/js/sites.js", "lodash"), None);
}

#[tokio::test]
async fn every_script_is_served_and_every_import_names_a_served_script() {
    let database = TestDatabase::new().await;
    let service = Service::start(&database);
    // The page's files are public: no token.
    let anonymous = reqwest::Client::new();

    let scripts = scripts_on_disk();
    assert!(scripts.contains_key("/app.js"), "{:?}", scripts.keys());
    assert!(scripts.len() > 1, "the page is split into modules");
    for (url, text) in &scripts {
        let response = anonymous
            .get(service.url(url))
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{url} is not served: add it to the embedded modules of src/api/static_files.rs"
        );
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(
            header("content-type").starts_with("text/javascript"),
            "{url}: {}",
            header("content-type")
        );
        assert_eq!(header("cache-control"), "no-cache", "{url}");
        assert_eq!(
            &response.text().await.expect("body"),
            text,
            "{url} is served as it is on disk"
        );
        assert!(
            text.starts_with("//"),
            "{url} starts with a comment saying what it is for"
        );
    }

    let served: BTreeSet<&str> = scripts.keys().map(String::as_str).collect();
    for (url, text) in &scripts {
        for specifier in import_specifiers(text) {
            let target = resolve(url, &specifier)
                .unwrap_or_else(|| panic!("{url} imports the bare specifier '{specifier}'"));
            assert!(
                served.contains(target.as_str()),
                "{url} imports '{specifier}' ({target}), which is not a served script"
            );
        }
    }

    // Every script the page itself loads is served too.
    let html = std::fs::read_to_string(web_folder().join("index.html")).expect("index.html");
    let mut loaded = 0;
    for piece in html.split("<script").skip(1) {
        let tag = &piece[..piece.find('>').expect("end of the script tag")];
        if let Some(at) = tag.find("src=\"") {
            let source = &tag[at + 5..];
            let source = &source[..source.find('"').expect("end of src")];
            let target = resolve("/", &format!("./{}", source.trim_start_matches("./")))
                .expect("relative src");
            assert!(
                served.contains(target.as_str()),
                "index.html loads {source}"
            );
            loaded += 1;
        }
    }
    assert!(loaded > 0, "index.html loads the entry module");

    // A name that is not an embedded module is a 404 in the API's error format.
    for missing in ["/js/nothing-here.js", "/js/%2E%2E%2Fapp.js"] {
        let response = anonymous
            .get(service.url(missing))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        let body: Value = response.json().await.expect("json error");
        assert_eq!(body["error"]["code"], "not_found", "{missing}");
    }
}
