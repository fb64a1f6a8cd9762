//! The `--format json` contract, on the example project: every command's document is one JSON
//! object with `ok`, conforms to its published schema (`docs/schema/<command>.schema.json`,
//! generated from the types), and keeps its shape (keys and value types, snapshotted; values
//! vary by run and are left out).

#[path = "../../pgkeel/tests/support/mod.rs"]
mod support;

mod cli_support;

use std::path::Path;

use cli_support::{example_dir, json, pgkeel};
use support::{copy_dir, TestDb};

/// The document's keys and value types, recursively; an array by its first element.
fn shape(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as V;
    match v {
        V::Null => "null".into(),
        V::Bool(_) => "bool".into(),
        V::Number(_) => "number".into(),
        V::String(_) => "string".into(),
        V::Array(a) => V::Array(a.first().map(shape).into_iter().collect()),
        V::Object(o) => V::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

fn schema_of(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/schema")
        .join(format!("{name}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap())
        .unwrap_or_else(|e| panic!("{name}: not a valid schema: {e}"))
}

/// Runs `pgkeel ARGS --format json` in `dir`, checks `ok` and the schema (`Some(name)`), and
/// returns the document.
fn document(dir: &Path, url: &str, args: &[&str], schema: Option<&str>) -> serde_json::Value {
    let out = pgkeel(dir)
        .env("DATABASE_URL", url)
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let doc = json(&out.stdout);
    assert!(
        doc.get("ok").is_some_and(|ok| ok.is_boolean()),
        "{args:?}: no boolean `ok` in {doc:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(name) = schema {
        let v = schema_of(name);
        let errors: Vec<String> = v
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{args:?} does not match docs/schema/{name}.schema.json: {errors:#?}"
        );
    }
    doc
}

#[tokio::test]
async fn every_commands_json_has_ok_matches_its_schema_and_keeps_its_shape() {
    let db = TestDb::new("json_contract").await;
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&example_dir(), &tmp.path().join("drizzle"));
    let dir = tmp.path();
    let url = db.url.as_str();
    let mut shapes = serde_json::Map::new();
    let mut record = |name: &str, doc: serde_json::Value| {
        shapes.insert(name.to_string(), shape(&doc));
    };
    record("lint", document(dir, url, &["lint"], Some("lint")));
    record(
        "migrate-validate",
        document(dir, url, &["migrate", "validate"], Some("migrate-validate")),
    );
    record("test", document(dir, url, &["test"], Some("test")));
    record("migrate", document(dir, url, &["migrate"], Some("migrate")));
    record("status", document(dir, url, &["status"], Some("status")));
    record(
        "validate",
        document(dir, url, &["validate"], Some("validate")),
    );
    let mut monitor = document(dir, url, &["monitor"], Some("monitor"));
    // Alerts and samples depend on what else the shared server is doing: schema-checked only.
    for volatile in ["alerts", "history"] {
        monitor.as_object_mut().unwrap().remove(volatile);
    }
    record("monitor", monitor);
    // `schema dump --format json` is the bare snapshot (read back by `--expected`), no `ok`.
    pgkeel(dir)
        .env("DATABASE_URL", url)
        .args(["schema", "dump", "--format", "json", "-o", "schema.json"])
        .assert()
        .success();
    let snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("schema.json")).unwrap()).unwrap();
    let errors: Vec<String> = schema_of("schema-dump")
        .iter_errors(&snapshot)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "schema dump: {errors:#?}");
    record(
        "schema-diff",
        document(
            dir,
            url,
            &["schema", "diff", "--from", "schema.json"],
            Some("schema-diff"),
        ),
    );
    record(
        "backup-full",
        document(
            dir,
            url,
            &["backup", "full", "--name", "b1"],
            Some("backup-full"),
        ),
    );
    record(
        "backup-list",
        document(dir, url, &["backup", "list"], Some("backup-list")),
    );
    record(
        "backup-verify",
        document(dir, url, &["backup", "verify", "b1"], Some("backup-verify")),
    );
    let empty = TestDb::new("json_contract_restore").await;
    record(
        "restore",
        document(
            dir,
            url,
            &["restore", "b1", "--target-url", &empty.url],
            Some("restore"),
        ),
    );
    record(
        "rollback",
        document(
            dir,
            url,
            &["rollback", "0004_happy_banshee"],
            Some("rollback"),
        ),
    );
    record(
        "deploy",
        document(
            dir,
            url,
            &["deploy", "--env", "development"],
            Some("deploy"),
        ),
    );
    record("config", document(dir, url, &["config"], Some("config")));
    record(
        "backup-cleanup",
        document(
            dir,
            url,
            &["backup", "cleanup", "--dry-run"],
            Some("backup-cleanup"),
        ),
    );
    insta::assert_json_snapshot!("json_shapes", serde_json::Value::Object(shapes));
}
