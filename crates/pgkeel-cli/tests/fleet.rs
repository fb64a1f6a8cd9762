//! `pgkeel migrate --targets`: exit codes, per-target lines, the JSON report, the report file
//! and `--resume`, end to end against a real PostgreSQL with databases of the test's own.

#[path = "../../pgkeel/tests/support/mod.rs"]
mod support;

mod cli_support;

use cli_support::{json, pgkeel};
use std::path::{Path, PathBuf};

use predicates::prelude::*;
use support::TestDb;

/// A project with two migrations in `migrations/` and a targets.toml listing `urls`.
fn project(targets: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("migrations");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("0001_items.sql"), "CREATE TABLE items (id int);\n").unwrap();
    std::fs::write(
        m.join("0002_runs.sql"),
        "CREATE TABLE runs (n int);\nINSERT INTO runs VALUES (2);\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("targets.toml"), targets).unwrap();
    tmp
}

fn databases_toml(dbs: &[&TestDb]) -> String {
    dbs.iter()
        .map(|d| format!("[[database]]\nurl = \"{}\"\n", d.url))
        .collect()
}

fn statuses(doc: &serde_json::Value) -> Vec<String> {
    doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap().to_string())
        .collect()
}

async fn runs(db: &TestDb) -> Vec<i32> {
    db.client()
        .await
        .query("SELECT n FROM runs", &[])
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default()
}

fn fleet_reports(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("reports"))
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("fleet-migrate-")
    });
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_targets_stops_continues_reports_and_resumes() {
    let (a, b, c, d) = (
        TestDb::new("cli_fleet_a").await,
        TestDb::new("cli_fleet_b").await,
        TestDb::new("cli_fleet_c").await,
        TestDb::new("cli_fleet_d").await,
    );
    b.client()
        .await
        .batch_execute("CREATE TABLE items (id int)")
        .await
        .unwrap();
    let tmp = project(&databases_toml(&[&a, &b, &c, &d]));

    // Stop at the first failure: b fails, c and d are not run; exit 4.
    let out = pgkeel(tmp.path())
        .args([
            "migrate",
            "--targets",
            "targets.toml",
            "--parallel",
            "1",
            "--format",
            "json",
        ])
        .assert()
        .code(4)
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert_eq!(doc["ok"], false);
    assert_eq!(statuses(&doc), ["ok", "failed", "not-run", "not-run"]);
    assert_eq!(doc["counts"]["not_run"], 2);
    assert_eq!(doc["targets"][1]["name"], b.name());
    assert!(doc["targets"][1]["error"]
        .as_str()
        .unwrap()
        .contains("0001_items"));
    let first_report = PathBuf::from(doc["report_path"].as_str().unwrap());
    assert!(first_report.exists());
    assert!(first_report
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("fleet-migrate-"));
    assert_eq!(runs(&c).await, Vec::<i32>::new());

    // Continue on error, human output: a line per target, a summary, how to resume.
    pgkeel(tmp.path())
        .args([
            "migrate",
            "--targets",
            "targets.toml",
            "--parallel",
            "2",
            "--continue-on-error",
        ])
        .assert()
        .code(4)
        .stdout(
            predicate::str::contains(format!("failed  {}", b.name()))
                .and(predicate::str::contains(c.name()))
                .and(predicate::str::contains("applied 2"))
                .and(predicate::str::contains("nothing to do"))
                .and(predicate::str::contains(
                    "migrate: 3 ok, 1 failed, 0 not run, 0 skipped of 4 target(s)",
                ))
                .and(predicate::str::contains("--resume reports/fleet-migrate-")),
        )
        .stderr(predicate::str::contains("0001_items"));
    for db in [&a, &c, &d] {
        assert_eq!(runs(db).await, [2], "{}", db.name());
    }
    let reports = fleet_reports(tmp.path());
    assert_eq!(reports.len(), 2, "{reports:?}");

    // Fix b and resume from the last report: only b runs.
    b.client()
        .await
        .batch_execute("DROP TABLE items")
        .await
        .unwrap();
    // Two reports of the same second are `…-HHMMSS.json` and `…-HHMMSS-2.json`: pick the new one.
    let last = reports.iter().find(|p| **p != first_report).unwrap();
    let out = pgkeel(tmp.path())
        .args([
            "migrate",
            "--targets",
            "targets.toml",
            "--format",
            "json",
            "--resume",
        ])
        .arg(last)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert_eq!(doc["ok"], true);
    assert_eq!(statuses(&doc), ["skipped", "ok", "skipped", "skipped"]);
    assert_eq!(
        doc["targets"][1]["detail"]["applied"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(runs(&b).await, [2]);

    // --no-report writes nothing.
    pgkeel(tmp.path())
        .args(["migrate", "--targets", "targets.toml", "--no-report"])
        .assert()
        .success();
    assert_eq!(fleet_reports(tmp.path()).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_connection_failures_exit_3_and_never_print_the_password() {
    let a = TestDb::new("cli_fleet_conn").await;
    let tmp = project(&format!(
        "{}[[database]]\nname = \"nowhere\"\nurl-env = \"NOWHERE_URL\"\n",
        databases_toml(&[&a])
    ));
    let out = pgkeel(tmp.path())
        .env(
            "NOWHERE_URL",
            "postgresql://app:hunter2@127.0.0.1:1/nowhere",
        )
        .args([
            "migrate",
            "--targets",
            "targets.toml",
            "--continue-on-error",
            "--format",
            "json",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("hunter2").not())
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter2"), "{text}");
    let doc = json(&out.stdout);
    assert_eq!(statuses(&doc), ["ok", "failed"]);
    assert_eq!(doc["targets"][1]["connection_error"], true);
    assert_eq!(
        doc["targets"][1]["database"],
        "postgresql://app:***@127.0.0.1:1/nowhere"
    );
    let report = std::fs::read_to_string(doc["report_path"].as_str().unwrap()).unwrap();
    assert!(!report.contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_canary_exits_4_and_runs_nothing_else() {
    let (a, b) = (
        TestDb::new("cli_fleet_can_a").await,
        TestDb::new("cli_fleet_can_b").await,
    );
    a.client()
        .await
        .batch_execute("CREATE TABLE items (id int)")
        .await
        .unwrap();
    let tmp = project(&databases_toml(&[&a, &b]));
    pgkeel(tmp.path())
        .args([
            "migrate",
            "--targets",
            "targets.toml",
            "--canary",
            "1",
            "--continue-on-error",
        ])
        .assert()
        .code(4)
        .stdout(predicate::str::contains("not run (canary failed"));
    assert_eq!(runs(&b).await, Vec::<i32>::new());
}

#[test]
fn bad_targets_files_are_usage_errors_that_name_the_file() {
    let tmp = project("[[database]]\nurl = \"postgresql://h/db\"\nurls = \"x\"\n");
    pgkeel(tmp.path())
        .args(["migrate", "--targets", "targets.toml"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("targets.toml")
                .and(predicate::str::contains("urls"))
                .and(predicate::str::contains("line 3")),
        );
    pgkeel(tmp.path())
        .args(["migrate", "--targets", "missing.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing.toml"));
    std::fs::write(
        tmp.path().join("targets.toml"),
        "[[database]]\nurl-env = \"NOT_SET_ANYWHERE\"\n",
    )
    .unwrap();
    pgkeel(tmp.path())
        .args(["migrate", "--targets", "targets.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("NOT_SET_ANYWHERE"));
    pgkeel(tmp.path())
        .args(["migrate", "--targets", "targets.toml", "--parallel", "0"])
        .assert()
        .code(2);
    // Fleet flags without --targets are a mistake, not silently ignored.
    for flag in [
        &["--continue-on-error"][..],
        &["--parallel", "2"],
        &["--canary", "1"],
    ] {
        pgkeel(tmp.path())
            .arg("migrate")
            .args(flag)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--targets"));
    }
}

#[test]
fn migrate_help_documents_the_fleet_flags_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    pgkeel(tmp.path())
        .args(["migrate", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("--targets <FILE>")
                .and(predicate::str::contains("--parallel <N>"))
                .and(predicate::str::contains("--canary <N>"))
                .and(predicate::str::contains("--continue-on-error"))
                .and(predicate::str::contains("--resume <REPORT>"))
                .and(predicate::str::contains("--no-report"))
                .and(predicate::str::contains("3 when every"))
                .and(predicate::str::contains("[default: 4]")),
        );
}
