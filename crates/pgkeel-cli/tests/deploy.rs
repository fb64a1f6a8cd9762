//! End-to-end tests of `pgkeel deploy`: the example project in each environment, a failing
//! migration in production, drift, lint, and a health URL that never turns healthy. Real
//! PostgreSQL, one fresh database per test; the health endpoints are tiny local HTTP servers.

#[path = "../../pgkeel/tests/support/mod.rs"]
mod support;

mod cli_support;

use cli_support::{example_dir, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use support::TestDb;

/// `pgkeel` in `cwd` with a clean environment and DATABASE_URL set to `url`.
fn pgkeel(cwd: &Path, url: &str) -> Command {
    let mut cmd = cli_support::pgkeel(cwd);
    cmd.env("DATABASE_URL", url);
    cmd
}

/// The one deploy report written under `dir/reports`.
fn written_report(dir: &Path) -> serde_json::Value {
    let reports: Vec<PathBuf> = std::fs::read_dir(dir.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("deploy-")
        })
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let name = reports[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    // deploy-YYYY-MM-DD-HHMMSS.json
    assert_eq!(name.len(), "deploy-2026-11-26-013000.json".len(), "{name}");
    json(&std::fs::read(&reports[0]).unwrap())
}

fn step<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {report}"))
}

async fn table_exists(db: &TestDb, name: &str) -> bool {
    db.client()
        .await
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn production_deploy_of_the_example_backs_up_migrates_and_validates() {
    let db = TestDb::new("deploy_prod").await;
    let tmp = tempfile::tempdir().unwrap();
    let out = pgkeel(tmp.path(), &db.url)
        .args(["deploy", "--env", "production", "--format", "json"])
        .arg("--migrations")
        .arg(example_dir())
        .assert()
        .code(0)
        .get_output()
        .clone();
    let doc = json(&out.stdout);
    assert_eq!(doc["outcome"], "succeeded", "{doc}");
    assert_eq!(doc["environment"], "production");
    assert_eq!(doc["applied"].as_array().unwrap().len(), 5, "{doc}");
    let names: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "connect",
            "check-migrations",
            "lint",
            "validate-before",
            "backup",
            "migrate",
            "validate-after",
            "performance",
            "health"
        ]
    );
    for s in doc["steps"].as_array().unwrap() {
        assert!(
            ["ok", "warning", "skipped"].contains(&s["status"].as_str().unwrap()),
            "{s}"
        );
        assert!(s["duration_ms"].is_u64());
    }
    assert_eq!(step(&doc, "backup")["status"], "ok", "{doc}");
    assert_eq!(step(&doc, "health")["status"], "skipped");
    // The backup exists and is the one the report names.
    let backup = PathBuf::from(doc["backup"]["path"].as_str().unwrap());
    assert!(backup.join("manifest.json").is_file(), "{backup:?}");
    assert_eq!(doc["backup"]["verified"], true);
    // Before/after performance: the database grew by the new tables.
    let size = &doc["performance"]["database_size_bytes"];
    assert!(size["after"].as_i64().unwrap() >= size["before"].as_i64().unwrap());
    assert!(doc["recovery"].as_array().unwrap().is_empty());
    assert!(table_exists(&db, "public.analysis_sessions").await);
    // The report on disk is the one printed.
    let written = written_report(tmp.path());
    assert_eq!(written["started_at"], doc["started_at"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("FAIL"), "{stderr}");

    // A second deploy has nothing to do: no backup is taken.
    let doc = json(
        &pgkeel(tmp.path(), &db.url)
            .args([
                "deploy",
                "--env",
                "production",
                "--format",
                "json",
                "--no-report",
            ])
            .arg("--migrations")
            .arg(example_dir())
            .assert()
            .code(0)
            .get_output()
            .stdout,
    );
    assert!(doc["applied"].as_array().unwrap().is_empty());
    assert_eq!(step(&doc, "backup")["status"], "skipped");
    assert!(doc.get("backup").is_none(), "{doc}");
}

#[tokio::test]
async fn staging_and_development_deploy_without_backup() {
    for env in ["staging", "development"] {
        let db = TestDb::new(&format!("deploy_{env}")).await;
        let tmp = tempfile::tempdir().unwrap();
        let out = pgkeel(tmp.path(), &db.url)
            .args(["deploy", "--env", env])
            .arg("--migrations")
            .arg(example_dir())
            .assert()
            .code(0)
            .get_output()
            .clone();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("deploy succeeded"), "{stdout}");
        assert!(stdout.contains("5 migration(s) applied"), "{stdout}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("skip backup"), "{stderr}");
        let report = written_report(tmp.path());
        assert_eq!(report["environment"], env);
        assert_eq!(step(&report, "backup")["status"], "skipped");
        assert!(!tmp.path().join("backups").exists());
    }
}

#[tokio::test]
async fn failing_migration_in_production_is_rolled_back_and_the_report_names_the_backup() {
    let db = TestDb::new("deploy_fail").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("0001_users.sql"),
        "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text);\n",
    )
    .unwrap();
    pgkeel(tmp.path(), &db.url)
        .args(["deploy", "--env", "production", "--no-report"])
        .assert()
        .code(0);
    db.client()
        .await
        .batch_execute("INSERT INTO users (email) VALUES ('a@example.com')")
        .await
        .unwrap();
    std::fs::write(
        dir.join("0002_posts.sql"),
        "CREATE TABLE posts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\n",
    )
    .unwrap();
    // Fails in its second statement: the whole migration's transaction is rolled back.
    std::fs::write(
        dir.join("0003_broken.sql"),
        "CREATE TABLE tags (id bigint PRIMARY KEY);\nALTER TABLE users ADD COLUMN n int NOT NULL DEFAULT 1 / 0;\n",
    )
    .unwrap();
    let out = pgkeel(tmp.path(), &db.url)
        .args(["deploy", "--env", "production"])
        .assert()
        .code(4)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("deploy FAILED at migrate"), "{stdout}");
    assert!(stdout.contains("division by zero"), "{stdout}");
    assert!(
        stdout.contains("pgkeel rollback 0002_posts --cascade"),
        "{stdout}"
    );
    assert!(stdout.contains("pgkeel restore "), "{stdout}");
    assert!(
        stdout.contains("not done: validate-after, performance, health"),
        "{stdout}"
    );
    let report = written_report(tmp.path());
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["failure"]["step"], "migrate");
    assert_eq!(report["failure"]["kind"], "migration");
    assert_eq!(report["applied"], serde_json::json!(["0002_posts"]));
    assert_eq!(step(&report, "validate-after")["status"], "not-run");
    let backup = PathBuf::from(report["backup"]["path"].as_str().unwrap());
    assert!(backup.join("manifest.json").is_file());
    let recovery: Vec<&str> = report["recovery"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        recovery[1].contains(&backup.display().to_string()),
        "{recovery:?}"
    );
    // 0003's table is gone with its transaction; 0002's stays; the data is untouched.
    assert!(!table_exists(&db, "public.tags").await);
    assert!(table_exists(&db, "public.posts").await);
    let n: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn drift_stops_the_deploy_unless_allowed() {
    let db = TestDb::new("deploy_drift").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("0001_t.sql"),
        "CREATE TABLE t (id bigint PRIMARY KEY);\n",
    )
    .unwrap();
    pgkeel(tmp.path(), &db.url)
        .args(["deploy", "--env", "staging", "--no-report"])
        .assert()
        .code(0);
    // A hand-made change after the deploy, then a new migration.
    db.client()
        .await
        .batch_execute("ALTER TABLE t ADD COLUMN manual text")
        .await
        .unwrap();
    std::fs::write(
        dir.join("0002_u.sql"),
        "CREATE TABLE u (id bigint PRIMARY KEY);\n",
    )
    .unwrap();
    let out = pgkeel(tmp.path(), &db.url)
        .args([
            "deploy",
            "--env",
            "staging",
            "--no-report",
            "--format",
            "json",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert_eq!(doc["failure"]["step"], "validate-before", "{doc}");
    assert!(
        doc["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("public.t.manual"),
        "{doc}"
    );
    assert!(!table_exists(&db, "public.u").await);

    let doc = json(
        &pgkeel(tmp.path(), &db.url)
            .args([
                "deploy",
                "--env",
                "staging",
                "--no-report",
                "--format",
                "json",
            ])
            .arg("--allow-drift")
            .assert()
            .code(0)
            .get_output()
            .stdout,
    );
    assert_eq!(step(&doc, "validate-before")["status"], "warning", "{doc}");
    assert!(table_exists(&db, "public.u").await);
}

#[tokio::test]
async fn lint_errors_stop_production_but_not_staging() {
    let db = TestDb::new("deploy_lint").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("0001_t.sql"),
        "CREATE TABLE t (id bigint PRIMARY KEY, v text);\n",
    )
    .unwrap();
    pgkeel(tmp.path(), &db.url)
        .args(["deploy", "--env", "development", "--no-report"])
        .assert()
        .code(0);
    // A blocking index build on an existing table.
    std::fs::write(dir.join("0002_idx.sql"), "CREATE INDEX t_v_idx ON t (v);\n").unwrap();
    let out = pgkeel(tmp.path(), &db.url)
        .args([
            "deploy",
            "--env",
            "production",
            "--no-report",
            "--no-backup",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("deploy FAILED at lint"), "{stdout}");
    assert!(stdout.contains("require-concurrent-index"), "{stdout}");
    assert!(stdout.contains("the database was not changed"), "{stdout}");

    let doc = json(
        &pgkeel(tmp.path(), &db.url)
            .args([
                "deploy",
                "--env",
                "staging",
                "--no-report",
                "--format",
                "json",
            ])
            .assert()
            .code(0)
            .get_output()
            .stdout,
    );
    assert_eq!(step(&doc, "lint")["status"], "warning", "{doc}");
    assert!(table_exists(&db, "public.t_v_idx").await);
}

/// An HTTP server on a free local port answering every request with `status`; returns the
/// port and a counter of requests served.
fn http_server(status: &'static str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = "{}";
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

#[tokio::test]
async fn a_health_url_that_never_turns_healthy_fails_the_deploy_after_the_timeout() {
    let db = TestDb::new("deploy_unhealthy").await;
    let tmp = tempfile::tempdir().unwrap();
    let (port, hits) = http_server("503 Service Unavailable");
    let url = format!("http://127.0.0.1:{port}/api/health?token=s3cret-token");
    let started = Instant::now();
    let out = pgkeel(tmp.path(), &db.url)
        .args(["deploy", "--env", "development", "--no-data-checks"])
        .args(["--health-url", &url, "--health-timeout", "2s"])
        .arg("--migrations")
        .arg(example_dir())
        .assert()
        .code(7)
        .get_output()
        .clone();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("deploy FAILED at health"), "{stdout}");
    assert!(stdout.contains("HTTP 503"), "{stdout}");
    assert!(
        !stdout.contains("s3cret") && !stderr.contains("s3cret"),
        "the health URL's token was printed"
    );
    // Migrated, so the way back is named.
    assert!(stdout.contains("pgkeel rollback 0000_"), "{stdout}");
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let report = written_report(tmp.path());
    assert_eq!(report["failure"]["kind"], "unhealthy");
    assert!(!report.to_string().contains("s3cret"));
    assert!(
        step(&report, "health")["detail"]["attempts"]
            .as_u64()
            .unwrap()
            >= 2
    );
}

#[tokio::test]
async fn a_healthy_url_passes() {
    let db = TestDb::new("deploy_healthy").await;
    let tmp = tempfile::tempdir().unwrap();
    let (port, _) = http_server("200 OK");
    let doc = json(
        &pgkeel(tmp.path(), &db.url)
            .args([
                "deploy",
                "--env",
                "development",
                "--format",
                "json",
                "--no-report",
            ])
            .args(["--health-url", &format!("http://127.0.0.1:{port}/healthz")])
            .arg("--migrations")
            .arg(example_dir())
            .assert()
            .code(0)
            .get_output()
            .stdout,
    );
    assert_eq!(step(&doc, "health")["status"], "ok", "{doc}");
    assert_eq!(step(&doc, "health")["detail"]["last_status"], 200);
}

#[tokio::test]
async fn deploy_targets_runs_the_pipeline_per_database_and_tenant_schema() {
    let a = TestDb::new("deploy_fleet_a").await;
    let b = TestDb::new("deploy_fleet_b").await;
    let broken = TestDb::new("deploy_fleet_broken").await;
    let tenants = TestDb::new("deploy_fleet_tenants").await;
    // The broken database already has the table the first migration creates: drift.
    broken
        .client()
        .await
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY)")
        .await
        .unwrap();
    tenants
        .client()
        .await
        .batch_execute("CREATE SCHEMA tenant_1; CREATE SCHEMA tenant_2;")
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("0001_items.sql"),
        "CREATE TABLE items (id bigint PRIMARY KEY, name text);\n",
    )
    .unwrap();
    let targets = format!(
        "[[database]]\nurl = \"{}\"\n\n[[database]]\nurl = \"{}\"\n\n[[database]]\nurl = \"{}\"\n\n[[tenants]]\nurl = \"{}\"\nquery = \"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\\\_%' ORDER BY 1\"\n",
        a.url, broken.url, b.url, tenants.url
    );
    std::fs::write(tmp.path().join("targets.toml"), targets).unwrap();
    let out = pgkeel(tmp.path(), &a.url)
        .args(["deploy", "--env", "production", "--targets", "targets.toml"])
        .args(["--continue-on-error", "--parallel", "2", "--format", "json"])
        .assert()
        .code(4)
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    let targets = doc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 5, "{doc}");
    let by_name = |n: &str| {
        targets
            .iter()
            .find(|t| t["name"].as_str().unwrap().ends_with(n))
            .unwrap_or_else(|| panic!("no target {n}: {doc}"))
    };
    let failed = by_name(broken.name());
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["detail"]["failure"]["step"], "validate-before",
        "{failed}"
    );
    assert!(failed["detail"]["applied"].as_array().unwrap().is_empty());
    for db in [&a, &b] {
        let t = by_name(db.name());
        assert_eq!(t["status"], "ok", "{t}");
        // Production: each database got its own verified backup, in its own directory.
        let path = PathBuf::from(t["detail"]["backup"]["path"].as_str().unwrap());
        assert!(path.join("manifest.json").is_file(), "{path:?}");
        assert!(path.parent().unwrap().ends_with(db.name()), "{path:?}");
        assert!(table_exists(db, "public.items").await);
    }
    for schema in ["tenant_1", "tenant_2"] {
        let t = by_name(&format!("/{schema}"));
        assert_eq!(t["status"], "ok", "{t}");
        assert_eq!(
            t["detail"]["steps"][4]["status"], "skipped",
            "tenants share their database's backup: {t}"
        );
        assert!(table_exists(&tenants, &format!("{schema}.items")).await);
    }
    assert!(!table_exists(&tenants, "public.items").await);
    // The fleet report was written.
    let reports: Vec<_> = std::fs::read_dir(tmp.path().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        reports.iter().any(|r| r.starts_with("fleet-deploy-")),
        "{reports:?}"
    );
}

#[tokio::test]
async fn a_backup_name_taken_in_the_same_second_gets_a_suffix() {
    let db = TestDb::new("deploy_same_second").await;
    let tmp = tempfile::tempdir().unwrap();
    // Backups of "this second" (and the next few, in case the clock ticks) already exist, as
    // when replicas deploy at once.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for s in now..now + 5 {
        let t = chrono::DateTime::from_timestamp(s, 0).unwrap();
        let name = format!("pre-deploy-{}", t.format("%Y%m%dT%H%M%SZ"));
        std::fs::create_dir_all(tmp.path().join("backups").join(name)).unwrap();
    }
    let doc = json(
        &pgkeel(tmp.path(), &db.url)
            .args([
                "deploy",
                "--env",
                "production",
                "--format",
                "json",
                "--no-report",
            ])
            .arg("--migrations")
            .arg(example_dir())
            .assert()
            .code(0)
            .get_output()
            .stdout,
    );
    let name = doc["backup"]["name"].as_str().unwrap();
    assert!(name.ends_with("-2"), "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_after_a_failed_deploy_retries_the_failed_migration_after_its_backup() {
    let db = TestDb::new("cli_deploy_retry").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("0001_users.sql"), "CREATE TABLE users (id int);\n").unwrap();
    std::fs::write(
        dir.join("0002_broken.sql"),
        "CREATE TABLE tags (id int);\nSELECT 1 / 0;\n",
    )
    .unwrap();
    pgkeel(tmp.path(), &db.url)
        .args(["deploy", "--env", "production", "--no-report"])
        .assert()
        .code(4);
    // The file is fixed; with --no-retry-failed the failed row still stops the deploy.
    std::fs::write(dir.join("0002_broken.sql"), "CREATE TABLE tags (id int);\n").unwrap();
    let out = pgkeel(tmp.path(), &db.url)
        .args([
            "deploy",
            "--env",
            "production",
            "--no-report",
            "--no-retry-failed",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("check-migrations"), "{text}");
    assert!(!table_exists(&db, "tags").await);
    // By default the next deploy retries it, backing up first.
    let out = pgkeel(tmp.path(), &db.url)
        .args([
            "deploy",
            "--env",
            "production",
            "--format",
            "json",
            "--no-report",
        ])
        .assert()
        .code(0)
        .get_output()
        .clone();
    let report = json(&out.stdout);
    assert_eq!(report["ok"], true);
    assert_eq!(report["applied"], serde_json::json!(["0002_broken"]));
    assert_eq!(step(&report, "check-migrations")["status"], "warning");
    assert_eq!(step(&report, "backup")["status"], "ok", "{report}");
    assert!(table_exists(&db, "tags").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deploy_fires_its_alert_and_the_next_good_one_resolves_it() {
    let db = TestDb::new("cli_deploy_alert").await;
    let (port, got) = support::receiver(vec![]).await;
    let hook = format!("http://127.0.0.1:{port}/alerts");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("0001_broken.sql"), "SELECT 1 / 0;\n").unwrap();
    pgkeel(tmp.path(), &db.url)
        .env("PGKEEL_ALERT_WEBHOOK", &hook)
        .args(["deploy", "--env", "staging", "--no-report"])
        .assert()
        .code(4);
    std::fs::write(dir.join("0001_broken.sql"), "SELECT 1;\n").unwrap();
    pgkeel(tmp.path(), &db.url)
        .env("PGKEEL_ALERT_WEBHOOK", &hook)
        .args(["deploy", "--env", "staging", "--no-report"])
        .assert()
        .code(0);
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let first: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(first["firing"][0]["id"], "deploy-failed");
    assert_eq!(first["firing"][0]["severity"], "critical");
    let message = first["firing"][0]["message"].as_str().unwrap();
    assert!(message.contains("failed at migrate"), "{message}");
    let second: serde_json::Value = serde_json::from_str(&got[1].1).unwrap();
    assert_eq!(second["resolved"][0]["id"], "deploy-failed");
    assert_eq!(second["firing"], serde_json::json!([]));
}
