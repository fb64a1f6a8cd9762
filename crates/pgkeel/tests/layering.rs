//! The layering ratchet: which top-level module of the library may name which
//! (`crate::<module>` in `src/**/*.rs` of `pgkeel` and `pgkeel-core`, test code and comments
//! left out).
//!
//! Three layers: `pgkeel-core` (pure, no server; [`CORE`]) below the engine (this crate's
//! modules) below the policy layer ([`TOP`]). The engine may use any core module; core cannot
//! name the engine (a compile error: it does not depend on it). `EDGES` is the rest of today's
//! graph, and it has no cycle and no back-edge. A new edge fails the test (say in `EDGES` why it
//! belongs, or depend the other way), and so does a listed edge that no longer exists (delete
//! it: the list only tightens).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Leaf modules: anything may use them, and they use nothing of the crate.
const LEAVES: &[&str] = &["duration", "ident", "layout", "location", "outcome"];

/// The modules of `pgkeel-core`, re-exported by `pgkeel` at the same paths. Every engine module
/// may use them; they use only each other.
const CORE: &[&str] = &[
    "config", "duration", "ident", "invert", "layout", "lint", "location", "outcome", "report",
    "source", "sql",
];

/// The policy layer: it may use anything, and nothing in the crate may use it.
const TOP: &[&str] = &["ops"];

const EDGES: &[(&str, &str)] = &[
    ("backup", "db"),
    ("backup", "ledger"),
    ("demo", "db"),
    ("ops", "backup"),
    ("ops", "db"),
    ("ops", "migrate"),
    ("ops", "monitor"),
    ("ops", "scratch"),
    ("ops", "validate"),
    ("drizzle", "db"),
    ("foreign", "db"),
    ("migrate", "foreign"),
    ("rollback", "foreign"),
    ("ledger", "db"),
    ("invert", "sql"),
    ("lint", "invert"),
    ("lint", "report"),
    ("lint", "source"),
    ("lint", "sql"),
    ("migrate", "db"),
    ("migrate", "drizzle"),
    ("migrate", "ledger"),
    // State-based rollback reads the schema before and after (schema never names migrate).
    ("migrate", "schema"),
    ("monitor", "db"),
    ("monitor", "migrate"),
    ("rollback", "db"),
    ("rollback", "drizzle"),
    ("rollback", "ledger"),
    // Revert sends through the executor apply uses (migrate/executor.rs).
    ("rollback", "migrate"),
    ("schema", "db"),
    // A snapshot of a URL, a JSON file or a folder applied to a scratch database.
    ("snapshot_input", "db"),
    ("snapshot_input", "migrate"),
    ("snapshot_input", "schema"),
    ("snapshot_input", "scratch"),
    ("scratch", "db"),
    ("scratch", "embedded"),
    ("ops", "ledger"),
    ("ops", "rollback"),
    ("ops", "schema"),
    ("validate", "db"),
    ("validate", "migrate"),
    ("validate", "schema"),
    ("validate", "scratch"),
    ("validate", "snapshot_input"),
];

/// The `crate::<module>` names in `text`, including `crate::{a, b::c}` groups.
fn named_modules(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut expect = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect = true,
                    c if expect && depth == 1 && (c.is_ascii_alphabetic() || c == '_') => {
                        out.insert(ident(&group[k..]));
                        expect = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Library code of a file: up to its `#[cfg(test)]`, without comment lines.
fn library_code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut graph = BTreeMap::new();
    crate_graph(&here.join("src"), &mut graph);
    crate_graph(&here.join("../pgkeel-core/src"), &mut graph);
    graph
}

/// Adds the module graph of one crate's `src` to `graph` (`pgkeel_core::x` counts as `crate::x`).
fn crate_graph(src: &Path, graph: &mut BTreeMap<String, BTreeSet<String>>) {
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            // Test code is not part of the layering (a module's `tests.rs` may use anything).
            if path.extension().and_then(|x| x.to_str()) != Some("rs")
                || path.file_name().is_some_and(|n| n == "tests.rs")
            {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            if first == "lib.rs" {
                continue;
            }
            let module = first.trim_end_matches(".rs").to_string();
            let code = library_code(&std::fs::read_to_string(&path).unwrap())
                .replace("pgkeel_core::", "crate::");
            let targets = graph.entry(module.clone()).or_default();
            targets.extend(named_modules(&code).into_iter().filter(|t| *t != module));
        }
    }
}

/// A cycle in `edges`, if there is one (depth-first search).
fn find_cycle(edges: &BTreeMap<&str, Vec<&str>>) -> Option<Vec<String>> {
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(n, 1);
        path.push(n);
        for &m in edges.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                1 => {
                    let at = path.iter().position(|x| *x == m).unwrap();
                    let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
                    cycle.push(m.to_string());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    for &n in edges.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn leaves_depend_on_nothing_in_the_crate() {
    let graph = graph();
    for leaf in LEAVES {
        let uses = graph.get(*leaf).cloned().unwrap_or_default();
        assert!(uses.is_empty(), "leaf module {leaf} uses {uses:?}");
    }
}

#[test]
fn core_uses_only_core() {
    for core in CORE {
        let uses = graph().get(*core).cloned().unwrap_or_default();
        let outside: Vec<&String> = uses
            .iter()
            .filter(|m| !CORE.contains(&m.as_str()) && !LEAVES.contains(&m.as_str()))
            .collect();
        assert!(
            outside.is_empty(),
            "core module {core} uses engine modules {outside:?}: core runs nothing"
        );
    }
}

#[test]
fn nothing_imports_the_policy_layer() {
    for (from, to) in graph() {
        for top in TOP {
            assert!(
                !to.contains(*top),
                "{from} uses {top}: policy lives in {top}, above the engine"
            );
        }
    }
}

#[test]
fn module_dependencies_only_tighten() {
    let actual: BTreeSet<(String, String)> = graph()
        .into_iter()
        .flat_map(|(from, to)| to.into_iter().map(move |t| (from.clone(), t)))
        .filter(|(_, to)| !LEAVES.contains(&to.as_str()))
        .filter(|(from, to)| CORE.contains(&from.as_str()) || !CORE.contains(&to.as_str()))
        .collect();
    let listed: BTreeSet<(String, String)> = EDGES
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<String> = actual
        .difference(&listed)
        .map(|(a, b)| format!("{a} -> {b}"))
        .collect();
    let gone: Vec<String> = listed
        .difference(&actual)
        .map(|(a, b)| format!("{a} -> {b}"))
        .collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "new module dependencies: {new:?} (depend on a lower layer instead, or add the edge to EDGES with the reason it belongs); \
         listed dependencies that are gone: {gone:?} (delete them from EDGES so they cannot come back)"
    );
}

#[test]
fn the_module_graph_is_acyclic() {
    let mut all: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in EDGES {
        all.entry(a).or_default().push(b);
    }
    assert_eq!(find_cycle(&all), None, "an import cycle between modules");
}

#[test]
fn find_cycle_finds_one() {
    let mut g: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    g.insert("a", vec!["b"]);
    g.insert("b", vec!["c"]);
    g.insert("c", vec!["a"]);
    assert_eq!(find_cycle(&g).map(|c| c.len()), Some(4));
    g.insert("c", vec![]);
    assert_eq!(find_cycle(&g), None);
}

#[test]
fn named_modules_reads_paths_and_groups() {
    let got = named_modules("use crate::db::{quote_ident, X};\nuse crate::{sql::{self, Batch}, source};\nlet x = crate::ledger::Y;");
    let want: BTreeSet<String> = ["db", "sql", "source", "ledger"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}
