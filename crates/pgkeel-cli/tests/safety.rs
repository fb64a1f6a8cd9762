//! Production safety of `pgkeel migrate`, with real processes against a real PostgreSQL:
//! concurrent deploys, CREATE INDEX CONCURRENTLY under the deploy lock, a killed lock holder,
//! lock_timeout protecting readers, and failures that name their blocker.

#[path = "../../pgkeel/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::TestDb;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pgkeel")
}

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    for (name, sql) in files {
        std::fs::write(tmp.path().join("migrations").join(name), sql).unwrap();
    }
    tmp
}

fn spawn_migrate(dir: &Path, url: &str, extra: &[&str]) -> Child {
    Command::new(bin())
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .arg("migrate")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pgkeel")
}

/// Waits for a child with a deadline; a hang is a failure (and the child is killed).
fn finish(mut child: Child, deadline: Duration) -> (i32, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.code().unwrap_or(-1), text);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "pgkeel did not finish within {deadline:?} (deadlock?): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until another session of the test database runs a statement matching `pattern`.
async fn wait_for_statement(client: &tokio_postgres::Client, pattern: &str) {
    let started = Instant::now();
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE $1 AND pid <> pg_backend_pid()",
                &[&pattern],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no session ever ran {pattern}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ints(client: &tokio_postgres::Client, sql: &str) -> Vec<i32> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_processes_at_once_apply_each_migration_exactly_once() {
    let db = TestDb::new("eight").await;
    let dir = folder(&[
        (
            "0001_a.sql",
            "CREATE TABLE side_effects (n int);\nINSERT INTO side_effects VALUES (1);\n",
        ),
        (
            "0002_b.sql",
            "INSERT INTO side_effects VALUES (2);\nSELECT pg_sleep(0.3);\n",
        ),
        ("0003_c.sql", "INSERT INTO side_effects VALUES (3);\n"),
    ]);
    let children: Vec<Child> = (0..8)
        .map(|_| spawn_migrate(dir.path(), &db.url, &[]))
        .collect();
    for c in children {
        let (code, out) = finish(c, Duration::from_secs(60));
        assert_eq!(code, 0, "{out}");
    }
    let client = db.client().await;
    assert_eq!(
        ints(&client, "SELECT n FROM side_effects ORDER BY n").await,
        vec![1, 2, 3]
    );
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM __drizzle_migrations WHERE status = 'applied'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_index_concurrently_does_not_deadlock_with_waiting_deployers() {
    let db = TestDb::new("cic").await;
    let dir = folder(&[
        (
            "0001_table.sql",
            "CREATE TABLE items (id bigint PRIMARY KEY, v int);\nINSERT INTO items SELECT g, g % 97 FROM generate_series(1, 20000) g;\n",
        ),
        ("0002_index.sql", "SELECT pg_sleep(0.5);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_v ON items (v);\n"),
    ]);
    let children: Vec<Child> = (0..4)
        .map(|_| spawn_migrate(dir.path(), &db.url, &[]))
        .collect();
    for c in children {
        let (code, out) = finish(c, Duration::from_secs(60));
        assert_eq!(code, 0, "{out}");
    }
    let client = db.client().await;
    let valid: bool = client
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_v'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_lock_holder_releases_the_lock_within_seconds() {
    let db = TestDb::new("kill9").await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE flag (sleepy boolean); INSERT INTO flag VALUES (true);")
        .await
        .unwrap();
    let dir = folder(&[
        (
            "0001_slow.sql",
            "SELECT pg_sleep(60) FROM flag WHERE sleepy;\nCREATE TABLE done_1 (id int);\n",
        ),
        ("0002_next.sql", "CREATE TABLE done_2 (id int);\n"),
    ]);
    let mut holder = spawn_migrate(dir.path(), &db.url, &[]);
    // Wait until the holder is inside the slow statement.
    wait_for_statement(&client, "%pg_sleep(60)%").await;
    holder.kill().unwrap(); // SIGKILL
    let _ = holder.wait();
    client
        .batch_execute("UPDATE flag SET sleepy = false")
        .await
        .unwrap();

    let t = Instant::now();
    let (code, out) = finish(
        spawn_migrate(dir.path(), &db.url, &[]),
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the next run waited {:?} for a dead holder's lock",
        t.elapsed()
    );
    let tables = ints(
        &client,
        "SELECT count(*)::int FROM pg_tables WHERE tablename IN ('done_1', 'done_2')",
    )
    .await;
    assert_eq!(
        tables,
        vec![2],
        "ledger and schema agree: both migrations ran once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_timeout_keeps_readers_moving_and_retries_until_the_blocker_commits() {
    let db = TestDb::new("locktimeout").await;
    let setup = db.client().await;
    setup
        .batch_execute("CREATE TABLE hot (id int); INSERT INTO hot SELECT generate_series(1, 100);")
        .await
        .unwrap();
    let dir = folder(&[(
        "0001_add_column.sql",
        "ALTER TABLE hot ADD COLUMN note text;\n",
    )]);

    // Session A holds ACCESS SHARE on `hot` in an open transaction.
    let blocker = db.client().await;
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM hot;")
        .await
        .unwrap();

    let child = spawn_migrate(
        dir.path(),
        &db.url,
        &["--lock-timeout", "1s", "--retries", "20"],
    );

    // Session C keeps reading the table while the migration waits; measure the worst wait.
    let reader = db.client().await;
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let t = Instant::now();
        reader
            .query_one("SELECT count(*) FROM hot", &[])
            .await
            .unwrap();
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    blocker.batch_execute("COMMIT").await.unwrap();
    let (code, out) = finish(child, Duration::from_secs(60));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("retry"), "retries are logged: {out}");
    // Without lock_timeout the reader would wait the full 4 s behind the queued ALTER.
    assert!(
        worst < Duration::from_millis(2000),
        "a reader waited {worst:?} behind the migration"
    );
    let cols: i64 = setup
        .query_one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'hot' AND column_name = 'note'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cols, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocker_that_never_commits_fails_the_migration_naming_its_pid() {
    let db = TestDb::new("blockerpid").await;
    let setup = db.client().await;
    setup
        .batch_execute("CREATE TABLE hot (id int);")
        .await
        .unwrap();
    let dir = folder(&[(
        "0001_add_column.sql",
        "ALTER TABLE hot ADD COLUMN note text;\n",
    )]);
    let blocker = db.client().await;
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM hot;")
        .await
        .unwrap();
    let pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    let (code, out) = finish(
        spawn_migrate(
            dir.path(),
            &db.url,
            &["--lock-timeout", "500ms", "--retries", "3"],
        ),
        Duration::from_secs(60),
    );
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("55P03"), "{out}");
    assert!(out.contains("after 3 tries"), "{out}");
    assert!(out.contains(&format!("blocked by pid {pid}")), "{out}");
    blocker.batch_execute("ROLLBACK").await.unwrap();
}

/// A real PgBouncer in transaction-pooling mode in front of the test server.
struct PgBouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    fn start() -> PgBouncer {
        let exe = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("pgbouncer is not installed: run scripts/setup.sh (apt-get install pgbouncer)");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            dir.path().join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host=127.0.0.1 port=5432\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 auth_type = trust\nauth_file = {d}/users.txt\npool_mode = transaction\ndefault_pool_size = 3\n\
                 max_client_conn = 200\nlogfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\nunix_socket_dir =\n\
                 ignore_startup_parameters = extra_float_digits,options\n"
            ),
        )
        .unwrap();
        let root = std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false);
        let mut cmd = if root {
            // PgBouncer refuses to run as root.
            Command::new("chmod")
                .args(["-R", "a+rwX"])
                .arg(dir.path())
                .status()
                .unwrap();
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", exe]);
            c
        } else {
            Command::new(exe)
        };
        let child = cmd
            .arg(dir.path().join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer did not start; see {d}/pgbouncer.log"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PgBouncer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // As root it runs under runuser, whose death leaves it running (with its server
        // connections to the test database): end it by its pid file.
        if let Ok(pid) = std::fs::read_to_string(self._dir.path().join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn through_pgbouncer_transaction_pooling_migrations_are_exactly_once_or_refused() {
    let db = TestDb::new("pgbouncer").await;
    let bouncer = PgBouncer::start();
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/{}",
        bouncer.port,
        db.name()
    );
    let dir = folder(&[
        (
            "0001_a.sql",
            "CREATE TABLE side_effects (n int);\nINSERT INTO side_effects VALUES (1);\n",
        ),
        (
            "0002_b.sql",
            "INSERT INTO side_effects VALUES (2);\nSELECT pg_sleep(0.2);\n",
        ),
        ("0003_c.sql", "INSERT INTO side_effects VALUES (3);\n"),
    ]);
    let children: Vec<Child> = (0..6)
        .map(|_| spawn_migrate(dir.path(), &url, &["--lock-wait", "20s"]))
        .collect();
    let mut refused = 0;
    for c in children {
        let (code, out) = finish(c, Duration::from_secs(90));
        match code {
            0 => {}
            _ if out.contains("transaction-pooling proxy") => refused += 1,
            // A run that finds the deploy lock left on a pooled server connection frees it by
            // ending that connection while it is idle; a run the proxy hands it to at that very
            // moment loses its connection (exit 3). Nothing is applied twice either way.
            3 if out.contains("connection lost") => refused += 1,
            _ => panic!("neither success nor the documented refusal (exit {code}): {out}"),
        }
    }
    // Finish over a direct connection: the pooled attempts must not have left a lock behind.
    let (code, out) = finish(
        spawn_migrate(dir.path(), &db.url, &["--lock-wait", "20s"]),
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "a lock was left behind by the pooled runs: {out}");
    let client = db.client().await;
    assert_eq!(
        ints(&client, "SELECT n FROM side_effects ORDER BY n").await,
        vec![1, 2, 3],
        "each migration ran exactly once ({refused} of 6 pooled runs refused)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_cancels_rolls_back_records_and_releases_the_lock() {
    let db = TestDb::new("sigterm").await;
    let client = db.client().await;
    let dir = folder(&[
        ("0001_fast.sql", "CREATE TABLE first_one (id int);\n"),
        (
            "0002_slow.sql",
            "CREATE TABLE half_done (id int);\nSELECT pg_sleep(60);\n",
        ),
    ]);
    let child = spawn_migrate(dir.path(), &db.url, &[]);
    wait_for_statement(&client, "%pg_sleep(60)%").await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    let (code, out) = finish(child, Duration::from_secs(20));
    assert_eq!(code, 130, "{out}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        t.elapsed()
    );
    assert!(out.contains("interrupted"), "{out}");
    let tables = ints(
        &client,
        "SELECT count(*)::int FROM pg_tables WHERE tablename IN ('first_one', 'half_done')",
    )
    .await;
    assert_eq!(tables, vec![1], "0001 stays applied, 0002 was rolled back");
    let status: String = client
        .query_one(
            "SELECT status FROM __drizzle_migrations WHERE id = '0002_slow'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "failed");
    let audit: i64 = client
        .query_one("SELECT count(*) FROM __pgkeel_audit WHERE migration_id = '0002_slow' AND detail->>'error' LIKE 'interrupted%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, 1, "the outcome is recorded");
    // The lock is free: a new run starts at once (and would sleep again, so just take the lock).
    std::fs::write(
        dir.path().join("migrations/0002_slow.sql"),
        "CREATE TABLE half_done (id int);\n",
    )
    .unwrap();
    let (code, out) = finish(
        spawn_migrate(dir.path(), &db.url, &["--lock-wait", "2s"]),
        Duration::from_secs(20),
    );
    assert_eq!(code, 0, "{out}");
}
