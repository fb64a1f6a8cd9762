//! `pgkeel monitor` and `pgkeel serve` end to end: JSON shape, the report file, exit codes per
//! worst level, `--watch` printing only changes, bad thresholds, a taken port. Real PostgreSQL,
//! one fresh database per test.

#[path = "../../pgkeel/tests/support/mod.rs"]
mod support;

mod cli_support;

use cli_support::{example_dir, json, pgkeel};
use std::path::PathBuf;
use std::time::Duration;

use predicates::prelude::*;
use support::TestDb;
use tokio::io::AsyncBufReadExt;

#[tokio::test]
async fn monitor_json_writes_the_report_and_exits_by_worst_level() {
    let db = TestDb::new("cli_mon_json").await;
    let tmp = tempfile::tempdir().unwrap();
    let out = pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["monitor", "--format", "json", "--migrations"])
        .arg(example_dir())
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    // Pending migrations are only info: exit 0, and the document says ok as the exit code does.
    assert_eq!(doc["summary"]["status"], "info");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["migrations"]["counts"]["pending"], 5);
    assert_eq!(doc["health"]["reachable"], true);
    assert!(doc["performance"]["database_size_bytes"].as_i64().unwrap() > 0);
    assert!(doc["cost"]["queries"].as_u64().unwrap() > 0);
    let file = PathBuf::from(doc["report_file"].as_str().unwrap());
    assert!(
        file.starts_with(tmp.path().join("reports")),
        "{}",
        file.display()
    );
    assert!(file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("db-health-"));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["summary"], doc["summary"]);

    // Only the migration section.
    let out = pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args([
            "monitor",
            "--migration-status",
            "--no-report",
            "--format",
            "json",
            "--migrations",
        ])
        .arg(example_dir())
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert!(doc.get("performance").is_none() && doc.get("migrations").is_some());
    assert!(doc["report_file"].is_null());
}

#[tokio::test]
async fn unreachable_database_exits_critical_without_showing_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let assert = pgkeel(tmp.path())
        .env("DATABASE_URL", "postgresql://app:hunter2@127.0.0.1:1/app")
        .env("HEALTH_CHECK_TIMEOUT", "2000")
        .args(["monitor", "--format", "json"])
        .timeout(Duration::from_secs(10))
        .assert()
        .code(11);
    let out = assert.get_output();
    let doc = json(&out.stdout);
    assert_eq!(doc["summary"]["status"], "critical");
    assert_eq!(doc["alerts"][0]["id"], "database-unreachable");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("hunter2"), "{all}");

    pgkeel(tmp.path())
        .env("DATABASE_URL", "postgresql://app:hunter2@127.0.0.1:1/app")
        .args(["monitor", "--health", "--no-report"])
        .assert()
        .code(11)
        .stdout(
            predicate::str::contains("UNREACHABLE")
                .and(predicate::str::contains("CRITICAL"))
                .and(predicate::str::contains("hunter2").not()),
        );
}

#[tokio::test]
async fn long_query_past_the_configured_threshold_exits_warning() {
    let db = TestDb::new("cli_mon_warn").await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("pgkeel.toml"),
        "[monitor.thresholds]\nlong-query-warning = \"1s\"\n",
    )
    .unwrap();
    let sleeper = db.client().await;
    let pid: i32 = sleeper
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let sleep = tokio::spawn(async move { sleeper.query("SELECT pg_sleep(30)", &[]).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["monitor", "--performance", "--no-report"])
        .assert()
        .code(10)
        .stdout(
            predicate::str::contains("WARNING  long-running-query")
                .and(predicate::str::contains(format!("pid {pid}"))),
        );
    db.client()
        .await
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let _ = sleep.await;
}

#[tokio::test]
async fn invalid_thresholds_are_a_usage_error_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("pgkeel.toml"),
        "[monitor.thresholds]\nlong-query-warning = \"soon\"\n",
    )
    .unwrap();
    pgkeel(tmp.path())
        .env("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/x")
        .arg("monitor")
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("[monitor.thresholds]").and(predicate::str::contains("soon")),
        );
}

#[tokio::test]
async fn watch_prints_only_changes() {
    let db = TestDb::new("cli_mon_watch").await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("pgkeel.toml"),
        "[monitor.thresholds]\nidle-in-transaction-warning = \"1s\"\n",
    )
    .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("pgkeel");
    let mut child = tokio::process::Command::new(bin)
        .current_dir(tmp.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("DATABASE_URL", &db.url)
        .args(["monitor", "--performance", "--no-report", "--watch", "1"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // The first full report ends with its cost line.
    while let Some(l) = lines.next_line().await.unwrap() {
        seen.push(l.clone());
        if l.starts_with("cost:") {
            break;
        }
    }
    let idle = db.client().await;
    idle.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            seen.push(l.clone());
            if l.contains("+ WARNING") && l.contains("idle-in-transaction") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "{}", seen.join("\n"));
    // After the first report, only change lines (`+`, `-`, `~`) are printed.
    let after: Vec<&String> = seen
        .iter()
        .skip_while(|l| !l.starts_with("cost:"))
        .skip(1)
        .collect();
    assert!(
        after
            .iter()
            .all(|l| l.contains(" + ") || l.contains(" - ") || l.contains(" ~ ")),
        "{after:#?}"
    );
    assert_eq!(seen.iter().filter(|l| l.starts_with("cost:")).count(), 1);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn serve_on_a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    pgkeel(tmp.path())
        .env(
            "DATABASE_URL",
            "postgresql://postgres@127.0.0.1:5432/postgres",
        )
        .args(["serve", "--listen", &addr.to_string()])
        .timeout(Duration::from_secs(10))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "another process already uses that port",
        ));
    pgkeel(tmp.path())
        .env(
            "DATABASE_URL",
            "postgresql://postgres@127.0.0.1:5432/postgres",
        )
        .args(["serve", "--listen", "0.0.0.0:0"])
        .timeout(Duration::from_secs(10))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--token-env"));
}

/// `/healthz` on `port` within one second: true when it answered 200.
async fn healthz_answers(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(true))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_starve_healthz_and_are_closed_within_30_seconds() {
    use tokio::io::AsyncReadExt;
    let db = TestDb::new("cli_serve_idle").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("pgkeel");
    // The server gets 256 file descriptors, as a small container would.
    let mut server = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' serve --listen 127.0.0.1:{port}",
            bin.display()
        ))
        .current_dir(tmp.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !healthz_answers(port).await {
        assert!(std::time::Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 400 connections that never send a request, held open.
    let mut idle = Vec::new();
    for _ in 0..400 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            idle.push(s);
        }
    }
    // /healthz keeps answering (within a few seconds, while the crowd is shed).
    let started = std::time::Instant::now();
    let mut answered = false;
    while started.elapsed() < Duration::from_secs(10) {
        if healthz_answers(port).await {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        answered,
        "/healthz did not answer with 400 idle connections held"
    );
    // Every idle connection is closed by the server within 30 s (EOF or reset on read).
    let closed_by = std::time::Instant::now() + Duration::from_secs(30);
    for mut s in idle {
        let left = closed_by.saturating_duration_since(std::time::Instant::now());
        let mut b = [0u8; 1];
        let read = tokio::time::timeout(left, s.read(&mut b)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "an idle connection was still open after 30 s"
        );
    }
    assert!(healthz_answers(port).await);
    server.kill().await.unwrap();
}

#[tokio::test]
async fn an_unwritable_reports_directory_is_a_warning_and_the_results_still_count() {
    let db = TestDb::new("cli_mon_noreports").await;
    let tmp = tempfile::tempdir().unwrap();
    // A directory cannot be created under a file.
    std::fs::write(tmp.path().join("a-file"), "").unwrap();
    let out = pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .env("PGKEEL_REPORTS_DIR", tmp.path().join("a-file/reports"))
        .args(["monitor", "--format", "json", "--migrations"])
        .arg(example_dir())
        .assert()
        .code(0)
        .get_output()
        .clone();
    let doc = json(&out.stdout);
    assert_eq!(
        doc["summary"]["status"], "info",
        "results printed, exit by findings"
    );
    assert!(doc["report_file"].is_null());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: the report was not written"), "{err}");
    assert!(
        err.contains("PGKEEL_REPORTS_DIR") && !err.contains("--reports-dir"),
        "{err}"
    );
}

#[tokio::test]
async fn largest_tables_are_quoted_and_leave_out_pgkeels_own() {
    let db = TestDb::new("cli_mon_largest").await;
    let tmp = tempfile::tempdir().unwrap();
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["migrate", "--migrations"])
        .arg(example_dir())
        .assert()
        .success();
    db.client()
        .await
        .batch_execute(r#"CREATE TABLE "Order Items" (id int); INSERT INTO "Order Items" SELECT generate_series(1, 20000);"#)
        .await
        .unwrap();
    let out = pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["monitor", "--no-report", "--migrations"])
        .arg(example_dir())
        .assert()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    let line = cli_support::line_where(&text, |l| l.trim_start().starts_with("largest"));
    assert!(line.contains(r#""public"."Order Items""#), "{line}");
    assert!(
        !line.contains("__drizzle_migrations") && !line.contains("__pgkeel"),
        "{line}"
    );
}
