//! `monitor` against a real PostgreSQL, one fresh database per test: sessions created by the test
//! show up with the right level, an unreachable server is critical within the health-check
//! timeout, migration status and failures, query count independent of the number of tables.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgkeel::config::Settings;
use pgkeel::migrate::{MigrateOptions, Migrator, Silent};
use pgkeel::monitor::{Monitor, MonitorReport, Sections};
use pgkeel::report::Severity;
use pgkeel::source;
use support::{native, TestDb};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cfi-handbook/drizzle")
}

/// Thresholds of one second so the test's sessions cross them quickly.
fn fast_thresholds(settings: &mut Settings) {
    settings.monitor = toml::from_str(
        "[thresholds]\nlong-query-warning = \"1s\"\nidle-in-transaction-warning = \"1s\"\nlock-wait-warning = \"1s\"\n",
    )
    .unwrap();
}

fn alerts_for<'a>(
    r: &'a MonitorReport,
    id: &str,
    object: &str,
) -> Vec<&'a pgkeel::report::Finding> {
    r.alerts
        .iter()
        .filter(|a| a.id == id && a.object == object)
        .collect()
}

async fn pid(c: &tokio_postgres::Client) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn long_query_idle_transaction_and_lock_wait_each_alert_as_warning() {
    let db = TestDb::new("mon_sessions").await;
    let setup = db.client().await;
    setup
        .batch_execute(
            "CREATE TABLE accounts (id int PRIMARY KEY); INSERT INTO accounts VALUES (1)",
        )
        .await
        .unwrap();

    // Idle in transaction, holding a lock.
    let holder = db.client().await;
    let holder_pid = pid(&holder).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // Waits for that lock.
    let waiter = db.client().await;
    let waiter_pid = pid(&waiter).await;
    let wait = tokio::spawn(async move { waiter.query("SELECT * FROM accounts", &[]).await });
    // A long-running query that blocks nobody.
    let sleeper = db.client().await;
    let sleeper_pid = pid(&sleeper).await;
    let sleep = tokio::spawn(async move { sleeper.query("SELECT pg_sleep(60)", &[]).await });
    tokio::time::sleep(Duration::from_millis(1600)).await;

    let mut settings = db.settings();
    fast_thresholds(&mut settings);
    let monitor = Monitor::new(&settings, PathBuf::from("no-such-folder")).unwrap();
    let r = monitor.run(Sections::from_flags(false, false, true)).await;
    assert!(r.health.reachable, "{:?}", r.health.error);

    let long = alerts_for(&r, "long-running-query", &format!("pid {sleeper_pid}"));
    assert_eq!(long.len(), 1, "{:#?}", r.alerts);
    assert_eq!(long[0].severity, Severity::Warning);
    assert!(long[0].message.contains("pg_sleep"), "{}", long[0].message);

    let idle = alerts_for(&r, "idle-in-transaction", &format!("pid {holder_pid}"));
    assert_eq!(idle.len(), 1, "{:#?}", r.alerts);
    assert_eq!(idle[0].severity, Severity::Warning);

    let lock = alerts_for(&r, "lock-wait", &format!("pid {waiter_pid}"));
    assert_eq!(lock.len(), 1, "{:#?}", r.alerts);
    assert_eq!(lock[0].severity, Severity::Warning);
    let perf = r.performance.as_ref().unwrap();
    // The monitor never queued behind the exclusive lock: sizes came from the catalog.
    assert!(perf.sizes_estimated);
    assert!(perf.largest_tables.iter().any(|t| t.name == "accounts"));
    let w = perf
        .lock_waits
        .iter()
        .find(|w| w.blocked.pid == waiter_pid)
        .unwrap();
    assert_eq!(w.blocked_by, vec![holder_pid]);
    assert_eq!(w.blockers[0].pid, holder_pid);
    assert_eq!(w.blockers[0].state.as_deref(), Some("idle in transaction"));
    // With default thresholds (one minute, five seconds) nothing of this is an alert yet.
    let calm = Monitor::new(&db.settings(), PathBuf::from("no-such-folder"))
        .unwrap()
        .run(Sections::from_flags(false, false, true))
        .await;
    assert!(
        calm.alerts.iter().all(|a| !matches!(
            a.id.as_str(),
            "long-running-query" | "idle-in-transaction" | "lock-wait"
        )),
        "{:#?}",
        calm.alerts
    );
    // …but what is there is reported, with its age: the waiting session is a lock wait and the
    // holder is idle in a transaction, below the thresholds or not.
    let calm_perf = calm.performance.as_ref().unwrap();
    assert!(
        calm_perf
            .lock_waits
            .iter()
            .any(|w| w.blocked.pid == waiter_pid && w.waiting_seconds >= 0.0),
        "{calm_perf:#?}"
    );
    assert!(calm_perf
        .idle_in_transaction
        .iter()
        .any(|s| s.pid == holder_pid && s.state_seconds.is_some()));

    setup
        .execute(
            "SELECT pg_terminate_backend(p) FROM unnest($1::int[]) p",
            &[&vec![holder_pid, waiter_pid, sleeper_pid]],
        )
        .await
        .unwrap();
    let _ = wait.await;
    let _ = sleep.await;
}

#[tokio::test]
async fn refused_connection_is_critical_with_the_reason() {
    let mut settings = support::settings_for("postgresql://postgres@127.0.0.1:1/postgres");
    settings.health_check_timeout = Duration::from_secs(2);
    let monitor = Monitor::new(&settings, PathBuf::from("migrations")).unwrap();
    let started = Instant::now();
    let r = monitor.run(Sections::ALL).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!r.health.reachable);
    assert_eq!(r.worst(), Some(Severity::Critical));
    assert_eq!(r.alerts[0].id, "database-unreachable");
    assert!(
        r.alerts[0].message.contains("refused"),
        "{}",
        r.alerts[0].message
    );
    assert_eq!(r.summary.status, "critical");
}

#[tokio::test]
async fn silent_server_is_a_critical_timeout_within_health_check_timeout() {
    // A server that accepts TCP connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let mut settings = support::settings_for(&format!(
        "postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable"
    ));
    settings.health_check_timeout = Duration::from_millis(800);
    let monitor = Monitor::new(&settings, PathBuf::from("migrations")).unwrap();
    let started = Instant::now();
    let r = monitor.run(Sections::ALL).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert!(!r.health.reachable && r.health.timed_out, "{:?}", r.health);
    assert_eq!(r.alerts[0].id, "connection-timeout");
    assert_eq!(r.alerts[0].severity, Severity::Critical);
    hold.abort();
}

#[tokio::test]
async fn migration_counts_last_applied_and_failure_is_critical() {
    let db = TestDb::new("mon_migrations").await;
    let dir = native(&[
        ("0001_users.sql", "CREATE TABLE users (id int PRIMARY KEY);"),
        ("0002_posts.sql", "CREATE TABLE posts (id int PRIMARY KEY);"),
    ]);
    let settings = db.settings();
    let client = db.client().await;
    {
        let set = source::load(dir.path()).unwrap();
        Migrator::new(&settings, &set)
            .migrate(
                &client,
                &MigrateOptions {
                    target: Some("0001_users".into()),
                    ..Default::default()
                },
                &mut Silent,
            )
            .await
            .unwrap();
    }
    let monitor = Monitor::new(&settings, dir.path().to_path_buf()).unwrap();
    let r = monitor.run(Sections::from_flags(false, true, false)).await;
    let m = r.migrations.as_ref().unwrap();
    assert_eq!(
        (m.counts.applied, m.counts.pending, m.counts.failed),
        (1, 1, 0)
    );
    assert_eq!(m.last_applied.as_ref().unwrap().id, "0001_users");
    assert!(m.last_applied.as_ref().unwrap().execution_ms.is_some());
    assert_eq!(m.pending, vec!["0002_posts".to_string()]);
    assert_eq!(r.worst(), Some(Severity::Info), "{:#?}", r.alerts);
    assert!(r.alerts.iter().any(|a| a.id == "migrations-pending"));
    assert!(r.performance.is_none());

    std::fs::write(
        dir.path().join("0003_broken.sql"),
        "CREATE TABLE comments (post_id int REFERENCES nowhere(id));",
    )
    .unwrap();
    let set = source::load(dir.path()).unwrap();
    let err = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await;
    assert!(err.is_err());
    let r = monitor.run(Sections::from_flags(false, true, false)).await;
    let m = r.migrations.as_ref().unwrap();
    assert_eq!((m.counts.applied, m.counts.failed), (2, 1));
    let failed = alerts_for(&r, "migration-failed", "0003_broken");
    assert_eq!(failed.len(), 1, "{:#?}", r.alerts);
    assert_eq!(failed[0].severity, Severity::Critical);
    assert!(
        failed[0].message.contains("nowhere"),
        "{}",
        failed[0].message
    );
    assert_eq!(r.summary.status, "critical");
}

async fn warm_cost(db: &TestDb) -> (u32, MonitorReport) {
    let monitor = Monitor::new(&db.settings(), example_dir()).unwrap();
    // The first run creates the history table; count a steady-state run.
    let _ = monitor.run(Sections::ALL).await;
    let r = monitor.run(Sections::ALL).await;
    (r.cost.queries, r)
}

#[tokio::test]
async fn query_count_does_not_grow_with_the_number_of_tables() {
    let small = TestDb::new("mon_small").await;
    let big = TestDb::new("mon_big").await;
    for (db, n) in [(&small, 2), (&big, 80)] {
        let c = db.client().await;
        let mut sql = String::new();
        for i in 0..n {
            sql.push_str(&format!(
                "CREATE TABLE t{i} (id int PRIMARY KEY, v text); CREATE INDEX ON t{i} (v);"
            ));
        }
        c.batch_execute(&sql).await.unwrap();
    }
    let (q_small, r_small) = warm_cost(&small).await;
    let (q_big, r_big) = warm_cost(&big).await;
    assert_eq!(
        q_small, q_big,
        "queries: {q_small} with 2 tables, {q_big} with 80"
    );
    // health probes (3) + health + activity + database stats + relations + vacuum + history
    // + the ledger read (2).
    assert_eq!(q_small, 11);
    let perf = r_big.performance.as_ref().unwrap();
    assert_eq!(perf.largest_tables.len(), 10);
    assert_eq!(perf.largest_indexes.len(), 10);
    assert!(r_small.performance.as_ref().unwrap().largest_tables.len() >= 2);
    // Two runs so far: two history samples, growth not yet computable.
    let h = r_big.history.as_ref().unwrap();
    assert!(h.kept, "{:?}", h.reason);
    assert_eq!(h.samples.len(), 2);
    assert!(h.growth.is_none());
}

#[tokio::test]
async fn statements_section_says_why_when_pg_stat_statements_is_missing() {
    let db = TestDb::new("mon_pgss").await;
    let monitor = Monitor::new(&db.settings(), example_dir()).unwrap();
    let r = monitor.run(Sections::ALL).await;
    let st = &r.performance.as_ref().unwrap().statements;
    assert!(!st.available);
    assert!(
        st.reason.as_deref().unwrap().contains("not installed"),
        "{st:?}"
    );
    // The rest of the report is there.
    assert!(r.health.reachable && r.performance.as_ref().unwrap().database_size_bytes > 0);

    // Installed but not loaded (the usual state without shared_preload_libraries).
    let c = db.client().await;
    let loaded: String = c
        .query_one("SELECT current_setting('shared_preload_libraries')", &[])
        .await
        .unwrap()
        .get(0);
    c.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .expect("contrib's pg_stat_statements is installed on the test server");
    let r = monitor.run(Sections::ALL).await;
    let st = &r.performance.as_ref().unwrap().statements;
    if loaded.contains("pg_stat_statements") {
        assert!(st.available, "{st:?}");
    } else {
        assert!(!st.available);
        assert!(
            st.reason
                .as_deref()
                .unwrap()
                .contains("shared_preload_libraries"),
            "{st:?}"
        );
    }
}

#[tokio::test]
async fn report_is_saved_as_db_health_json() {
    let db = TestDb::new("mon_report").await;
    let monitor = Monitor::new(&db.settings(), example_dir()).unwrap();
    let r = monitor.run(Sections::ALL).await;
    let dir = tempfile::tempdir().unwrap();
    let path = r.save(dir.path()).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("db-health-") && name.ends_with(".json"),
        "{name}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["health"]["reachable"], true);
    assert_eq!(
        v["migrations"]["counts"]["pending"], 5,
        "{}",
        v["migrations"]
    );
    assert!(v["performance"]["database_size_bytes"].as_i64().unwrap() > 0);
    assert!(v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == "migrations-pending"));
    assert!(!v.to_string().contains("password"));

    // The report's shape (keys two levels deep) is an interface: CI jobs read these files.
    let mut keys = Vec::new();
    for (k, inner) in v.as_object().unwrap() {
        keys.push(k.clone());
        if let Some(o) = inner.as_object() {
            keys.extend(o.keys().map(|k2| format!("{k}.{k2}")));
        }
    }
    keys.sort();
    insta::assert_snapshot!("report_keys", keys.join("\n"));
}
