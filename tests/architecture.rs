//! The shape of the code, checked from its sources: top-level modules depend on each other
//! without cycles and only downwards through the layers of docs/architecture.md, every module
//! file says what it is for, and no file grows past the size a newcomer can read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top to bottom: a module may use modules of its own layer (without cycles) and of
/// the layers below, never those above. docs/architecture.md draws the same table.
const LAYERS: &[&[&str]] = &[
    &["main", "lib", "cli", "commands", "demo"],
    &["api", "ws"],
    &["state", "jobs"],
    &["queries", "supervisor", "cluster"],
    &["connection"],
    &["pipeline", "downlink"],
    &["routing", "parsers", "events", "delivery", "seed"],
    &[
        "entity",
        "db",
        "config",
        "metrics",
        "telemetry",
        "shutdown",
        "backoff",
        "secrets",
    ],
];

/// Lines of code (not blank, not comment) a file may hold outside its `#[cfg(test)]` tests.
const MAX_CODE_LINES: usize = 600;

fn source_files(directory: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", directory.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            source_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

fn crate_sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for directory in ["src", "migration/src", "benches"] {
        source_files(&root.join(directory), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            (relative, text)
        })
        .collect()
}

/// The top-level module a file of `src/` belongs to: `src/pipeline/writer/mod.rs` → `pipeline`.
fn top_level_module(path: &Path) -> Option<String> {
    let mut components = path.components().map(|c| c.as_os_str().to_string_lossy());
    if components.next()? != "src" {
        return None;
    }
    let first = components.next()?;
    Some(first.trim_end_matches(".rs").to_string())
}

/// The code of a file before its unit tests.
fn code_before_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(index) => &text[..index],
        None => text,
    }
}

/// Top-level modules named by `crate::<module>` in the code (tests included: a test that
/// reaches upwards is as much a knot as code that does).
fn modules_used(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = text;
    while let Some(index) = rest.find("crate::") {
        let after = &rest[index + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `crate::{a, b}` groups are not used in this code base; a name is what follows.
        if !name.is_empty() {
            used.insert(name);
        }
        rest = after;
    }
    used
}

fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in crate_sources() {
        let Some(module) = top_level_module(&path) else {
            continue;
        };
        let entry = graph.entry(module.clone()).or_default();
        for used in modules_used(&text) {
            if used != module {
                entry.insert(used);
            }
        }
    }
    graph
}

/// Every cycle's modules (strongly connected components with more than one module).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: order by finishing time, then walk the reversed graph.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(node.to_string()) {
            return;
        }
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, seen, order);
        }
        order.push(node.to_string());
    }
    let mut reversed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in graph {
        for to in targets {
            reversed.entry(to.clone()).or_default().insert(from.clone());
        }
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for node in graph.keys() {
        visit(node, graph, &mut seen, &mut order);
    }
    let mut assigned = BTreeSet::new();
    let mut components = Vec::new();
    for node in order.iter().rev() {
        let mut component = Vec::new();
        visit(node, &reversed, &mut assigned, &mut component);
        if component.len() > 1 {
            component.sort();
            components.push(component);
        }
    }
    components
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = dependency_graph();
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "top-level modules that depend on each other in a cycle: {found:?}"
    );
}

#[test]
fn modules_use_only_their_own_layer_and_those_below() {
    let graph = dependency_graph();
    let mut problems = Vec::new();
    for (module, used) in &graph {
        let Some(layer) = layer_of(module) else {
            problems.push(format!(
                "module `{module}` is in no layer: add it to LAYERS and docs/architecture.md"
            ));
            continue;
        };
        for target in used {
            match layer_of(target) {
                Some(target_layer) if target_layer < layer => {
                    problems.push(format!("`{module}` uses `{target}`, a layer above it"))
                }
                Some(_) => {}
                None => problems.push(format!("`{module}` uses `{target}`, which is in no layer")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_source_file_says_what_it_is_for() {
    let missing: Vec<String> = crate_sources()
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` line saying what they are for: {missing:?}"
    );
}

#[test]
fn no_source_file_is_too_long_to_read() {
    let long: Vec<String> = crate_sources()
        .into_iter()
        .filter_map(|(path, text)| {
            let lines = code_before_tests(&text)
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with("//"))
                .count();
            (lines > MAX_CODE_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_CODE_LINES} lines of code outside their tests: {long:?}"
    );
}

#[test]
fn the_checks_see_what_they_check() {
    // A cycle and an upward use in a made-up graph are found.
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(from, to)| (from.to_string(), to.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
    assert_eq!(
        modules_used("use crate::pipeline::x; crate::events::Hub::new(1); crate::"),
        ["events", "pipeline"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert_eq!(
        top_level_module(Path::new("src/pipeline/writer/mod.rs")).as_deref(),
        Some("pipeline")
    );
    assert_eq!(top_level_module(Path::new("benches/ingest.rs")), None);
    // The real graph has every layer's modules in it.
    let real = dependency_graph();
    for module in [
        "pipeline",
        "connection",
        "supervisor",
        "api",
        "routing",
        "events",
    ] {
        assert!(real.contains_key(module), "{module} not found in src/");
    }
}
