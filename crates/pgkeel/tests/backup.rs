//! `backup` and `restore` against a real PostgreSQL, one fresh database per test. Content is
//! compared per table with an ordered `md5(string_agg(...))` computed by the server, and the
//! schema with `pg_dump --schema-only`, so "restored" means equal as PostgreSQL describes it.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pgkeel::backup::{
    self, BackupError, BackupOptions, KeyConfig, Progress, Quiet, RestoreOptions, VerifyOptions,
};
use pgkeel::db::Target;
use support::TestDb;

const FIXTURE: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    balance numeric(20, 6),
    born timestamptz,
    profile jsonb,
    tags text[],
    avatar bytea,
    feeling mood,
    note text,
    ratio double precision,
    span interval,
    full_name text GENERATED ALWAYS AS (email || '!') STORED,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE posts (
    id serial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users(id),
    body text
);
CREATE INDEX posts_user_idx ON posts (user_id);
CREATE TABLE events (id int NOT NULL, at date NOT NULL, payload text) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE VIEW user_posts AS SELECT u.email, count(p.id) AS posts FROM users u LEFT JOIN posts p ON p.user_id = u.id GROUP BY u.email;
CREATE SEQUENCE standalone_seq START 100;
SELECT nextval('standalone_seq'), nextval('standalone_seq');
INSERT INTO users (email, balance, born, profile, tags, avatar, feeling, note, ratio, span) VALUES
 ('a@x', 12345678901234.123456, '1999-12-31 23:59:59.123456+05:30', '{"k": [1, 2, {"z": null}], "s": "quote\" and \\ back"}', ARRAY['a','b c','d"e', NULL], '\x00ff10', 'happy', E'tab\there\nnewline\\backslash \u00e9\u4e2d\U0001F600', 0.1, '1 day 02:03:04'),
 ('b@x', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 ('c@x', -0.000001, 'infinity', '[]', '{}', '', 'sad', '', 'NaN', '-1 year'),
 ('d@x', 1e-6, '2024-02-29 12:00:00+00', 'null', ARRAY[]::text[], '\x5c', 'ok', E'\\N literal', 1.7976931348623157e308, '0');
INSERT INTO posts (user_id, body) SELECT 1 + (g % 4), 'post ' || g || repeat('x', g % 50) FROM generate_series(1, 3000) g;
INSERT INTO events SELECT g, DATE '2024-06-01' + (g % 400), md5(g::text) FROM generate_series(1, 2000) g;
"#;

/// Ordered content of every user table, as the server prints it.
async fn content(db: &TestDb) -> Vec<(String, i64, String)> {
    let c = db.client().await;
    let tables: Vec<String> = c
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = Vec::new();
    for t in tables {
        let r = c
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x"
                ),
                &[],
            )
            .await
            .unwrap();
        out.push((t, r.get(0), r.get(1)));
    }
    out
}

async fn sequences(db: &TestDb) -> Vec<(String, i64)> {
    let c = db.client().await;
    c.query(
        "SELECT schemaname || '.' || sequencename, coalesce(last_value, 0) FROM pg_sequences ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// `pg_dump --schema-only` without comments, blank lines and the `\restrict` key.
fn schema(db: &TestDb) -> String {
    let out = std::process::Command::new("pg_dump")
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "-d",
            &db.url,
        ])
        .output()
        .expect("run pg_dump (apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            !l.starts_with("--")
                && !l.trim().is_empty()
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn opts(dir: &Path, db: &TestDb) -> BackupOptions {
    let mut o = BackupOptions::from_settings(&db.settings());
    o.dir = dir.to_path_buf();
    o.workers = Some(2);
    o
}

fn target(db: &TestDb) -> Target {
    Target::from_settings(&db.settings()).unwrap()
}

fn restore_opts() -> RestoreOptions {
    RestoreOptions {
        tables: Vec::new(),
        clean: false,
        workers: 2,
        filter: Default::default(),
        keys: KeyConfig::default(),
        verify: true,
        // The tests restore one test database's backups into another.
        from_other_database: true,
        audit: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_keeps_every_type_partitions_sequences_views_and_fks() {
    let src = TestDb::new("bk_round").await;
    src.client().await.batch_execute(FIXTURE).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), &src);
    // Tiny chunks: posts and the partitions are split into ctid ranges.
    o.chunk_bytes = Some(16 * 1024);
    o.name = Some("b1".into());
    let m = backup::full(&src.settings(), &o, Arc::new(Quiet))
        .await
        .unwrap();
    assert!(
        m.tables.iter().any(|t| t.files.len() > 1),
        "some table split into ranges"
    );
    assert_eq!(
        m.tables.iter().find(|t| t.name == "posts").unwrap().rows,
        3000
    );
    assert!(
        !m.tables.iter().any(|t| t.name == "events"),
        "partitioned parent holds no rows"
    );

    let dst = TestDb::new("bk_round_dst").await;
    let summary = backup::restore(
        &dir.path().join("b1"),
        &target(&dst),
        &restore_opts(),
        Arc::new(Quiet),
    )
    .await
    .unwrap();
    assert_eq!(summary.rows, 3000 + 4 + 2000);
    assert_eq!(content(&src).await, content(&dst).await);
    assert_eq!(schema(&src), schema(&dst));
    assert_eq!(sequences(&src).await, sequences(&dst).await);
    // The next id continues after the restored ones.
    let next: i64 = dst
        .client()
        .await
        .query_one("SELECT nextval('users_id_seq')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 5);

    // Verify, with a restore test.
    let report = backup::verify(
        &dir.path().join("b1"),
        &VerifyOptions {
            keys: KeyConfig::default(),
            restore_test: Some(target(&src)),
            workers: 2,
        },
        Arc::new(Quiet),
    )
    .await
    .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert!(report.restore_tested);
    assert_eq!(report.tables_compared, m.tables.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_non_empty_target_unless_clean() {
    let src = TestDb::new("bk_nonempty").await;
    src.client()
        .await
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);")
        .await
        .unwrap();
    let ledger = pgkeel::ledger::Ledger::from_settings(&src.settings());
    ledger.ensure(&src.client().await).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), &src);
    o.name = Some("b".into());
    backup::full(&src.settings(), &o, Arc::new(Quiet))
        .await
        .unwrap();
    src.client()
        .await
        .batch_execute("DELETE FROM t WHERE id = 1; CREATE TABLE extra (x int);")
        .await
        .unwrap();
    let err = backup::restore(
        &dir.path().join("b"),
        &target(&src),
        &restore_opts(),
        Arc::new(Quiet),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::TargetNotEmpty { .. }), "{err}");
    let mut ro = restore_opts();
    ro.clean = true;
    ro.from_other_database = false; // its own backup
    ro.audit = Some(ledger);
    // A session of the application, connected to the database being replaced.
    let app = src.client().await;
    let s = backup::restore(&dir.path().join("b"), &target(&src), &ro, Arc::new(Quiet))
        .await
        .unwrap();
    // Restored into a fresh database and swapped in: the previous one is kept, renamed.
    let replaced = s
        .replaced
        .expect("a database with data is replaced by a swap");
    assert!(replaced.starts_with("pgkeel_t_bk_nonempty"), "{replaced}");
    assert!(
        app.simple_query("SELECT 1").await.is_err(),
        "its sessions were ended"
    );
    let c = src.client().await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    assert!(c
        .query_opt("SELECT 1 FROM pg_class WHERE relname = 'extra'", &[])
        .await
        .unwrap()
        .is_none());
    let audit: String = c
        .query_one(
            "SELECT detail->>'replaced' FROM __pgkeel_audit WHERE operation = 'restore'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, replaced, "the restore is in the audit log");
    let admin = Target::from_settings(&support::settings_for(&support::admin_url())).unwrap();
    let old = admin.with_dbname(&replaced).connect().await.unwrap();
    let extra = old
        .query_opt("SELECT 1 FROM pg_class WHERE relname = 'extra'", &[])
        .await
        .unwrap();
    assert!(extra.is_some(), "the previous database is kept as it was");
    drop(old);
    admin
        .connect()
        .await
        .unwrap()
        .batch_execute(&format!("DROP DATABASE \"{replaced}\" WITH (FORCE)"))
        .await
        .unwrap();
}

/// Runs `sql` on `url` from inside a synchronous progress callback.
fn run_sql_now(url: &str, sql: &str) {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let t = Target::from_settings(&support::settings_for(&url)).unwrap();
            t.connect()
                .await
                .unwrap()
                .batch_execute(&sql)
                .await
                .unwrap();
        });
    })
    .join()
    .unwrap();
}

struct WriteAfterSnapshot {
    url: String,
}
impl Progress for WriteAfterSnapshot {
    fn phase(&self, name: &str) {
        if name == "data" {
            run_sql_now(&self.url, "INSERT INTO t SELECT g FROM generate_series(1001, 1100) g; UPDATE t SET id = -id WHERE id <= 10;");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_committed_during_the_backup_are_not_in_it() {
    let src = TestDb::new("bk_snapshot").await;
    src.client()
        .await
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000);")
        .await
        .unwrap();
    let before = content(&src).await;
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), &src);
    o.name = Some("b".into());
    let m = backup::full(
        &src.settings(),
        &o,
        Arc::new(WriteAfterSnapshot {
            url: src.url.clone(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(m.tables[0].rows, 1000);
    assert_ne!(content(&src).await, before, "the writes happened");
    let dst = TestDb::new("bk_snapshot_dst").await;
    backup::restore(
        &dir.path().join("b"),
        &target(&dst),
        &restore_opts(),
        Arc::new(Quiet),
    )
    .await
    .unwrap();
    assert_eq!(content(&dst).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_fails_verify_naming_the_file() {
    let src = TestDb::new("bk_flip").await;
    let dir = tempfile::tempdir().unwrap();
    let m = flipped_backup(&src, dir.path()).await;
    let file = &m.tables[0].files[0].path;
    let vo = VerifyOptions {
        keys: KeyConfig::default(),
        restore_test: None,
        workers: 2,
    };
    let report = backup::verify(&dir.path().join("b"), &vo, Arc::new(Quiet))
        .await
        .unwrap();
    assert!(!report.ok());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(&report.problems[0].subject, file);
    // A restore of the damaged backup fails too.
    let dst = TestDb::new("bk_flip_dst").await;
    let err = backup::restore(
        &dir.path().join("b"),
        &target(&dst),
        &restore_opts(),
        Arc::new(Quiet),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains(file.as_str()), "{err}");
}

/// A full backup `b` in `dir` of a 5000-row table of `src`, with one byte of its first data
/// file flipped.
async fn flipped_backup(src: &TestDb, dir: &Path) -> backup::Manifest {
    src.client().await.batch_execute("CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g;").await.unwrap();
    let mut o = opts(dir, src);
    o.name = Some("b".into());
    let m = backup::full(&src.settings(), &o, Arc::new(Quiet))
        .await
        .unwrap();
    let path = dir.join("b").join(&m.tables[0].files[0].path);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    m
}

/// `restore --clean` of a damaged backup used to drop everything in the target first and then
/// fail halfway, leaving it empty and half-restored. Now the backup is checked first and the
/// target is left exactly as it was; another database's backup is refused before anything is
/// dropped; and even unverified, the restore goes into a fresh database, so the target stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_clean_of_a_damaged_backup_leaves_the_target_untouched() {
    let src = TestDb::new("bk_safe_src").await;
    let dir = tempfile::tempdir().unwrap();
    flipped_backup(&src, dir.path()).await;

    let live = TestDb::new("bk_safe_live").await;
    live.client()
        .await
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 42);")
        .await
        .unwrap();
    let before = content(&live).await;
    let mut ro = restore_opts();
    ro.clean = true;
    let err = backup::restore(&dir.path().join("b"), &target(&live), &ro, Arc::new(Quiet))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackupError::DamagedBeforeRestore { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert_eq!(
        content(&live).await,
        before,
        "the live database is as it was"
    );

    // Another database's backup over live data needs saying so.
    ro.from_other_database = false;
    let err = backup::restore(&dir.path().join("b"), &target(&live), &ro, Arc::new(Quiet)).await;
    assert!(
        matches!(err, Err(BackupError::DamagedBeforeRestore { .. })),
        "verified first"
    );
    ro.verify = false;
    let err = backup::restore(&dir.path().join("b"), &target(&live), &ro, Arc::new(Quiet))
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::OtherDatabase { .. }), "{err}");
    assert!(
        err.to_string().contains("bk_safe_src")
            && err.to_string().contains("--from-other-database"),
        "{err}"
    );
    assert_eq!(
        content(&live).await,
        before,
        "refused before anything was dropped"
    );

    // Unverified and damaged, it fails in the fresh database it goes into first: the live one
    // is untouched even so.
    ro.from_other_database = true;
    let err = backup::restore(&dir.path().join("b"), &target(&live), &ro, Arc::new(Quiet))
        .await
        .unwrap_err();
    assert!(
        !matches!(err, BackupError::FailedAfterClean { .. }),
        "{err}"
    );
    assert_eq!(
        content(&live).await,
        before,
        "the live database is as it was"
    );
}

/// `latest` used to be the newest backup in the folder whatever database it came from, so a
/// staging backup could be restored over production.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_is_the_newest_backup_of_the_same_database() {
    let prod = TestDb::new("bk_latest_prod").await;
    let staging = TestDb::new("bk_latest_staging").await;
    for db in [&prod, &staging] {
        db.client()
            .await
            .batch_execute("CREATE TABLE t (id int);")
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    for (db, name) in [(&prod, "a-prod"), (&staging, "b-staging")] {
        let mut o = opts(dir.path(), db);
        o.name = Some(name.into());
        backup::full(&db.settings(), &o, Arc::new(Quiet))
            .await
            .unwrap();
    }
    let source = backup::SourceDb::of(&prod.client().await).await.unwrap();
    let latest = backup::latest(dir.path(), Some(&source), None)
        .await
        .unwrap();
    assert_eq!(latest.name, "a-prod");
    let err = backup::latest(dir.path(), None, None).await.unwrap_err();
    assert!(matches!(err, BackupError::SeveralSources { .. }), "{err}");
}

/// Backup files were `0644` in `0755` directories (every local user could read the data), and
/// `backup list` called a backup with a deleted or truncated file valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_private_and_list_names_a_missing_or_truncated_file() {
    use std::os::unix::fs::PermissionsExt;
    let src = TestDb::new("bk_private").await;
    src.client()
        .await
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);")
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("backups");
    let mut o = opts(&dir, &src);
    o.name = Some("b".into());
    let m = backup::full(&src.settings(), &o, Arc::new(Quiet))
        .await
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("b")), 0o700);
    assert_eq!(mode(&dir.join("b/manifest.json")), 0o600);
    for (_, f) in m.files() {
        assert_eq!(mode(&dir.join("b").join(&f.path)), 0o600, "{}", f.path);
    }
    assert!(backup::list(&dir).await.unwrap()[0].is_valid());
    let data = dir.join("b").join(&m.tables[0].files[0].path);
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() / 2]).unwrap();
    let listed = &backup::list(&dir).await.unwrap()[0];
    assert!(
        matches!(&listed.status, backup::BackupStatus::Damaged(r) if r.contains("bytes")),
        "{:?}",
        listed.status
    );
    std::fs::remove_file(&data).unwrap();
    let listed = &backup::list(&dir).await.unwrap()[0];
    assert!(
        matches!(&listed.status, backup::BackupStatus::Damaged(r) if r.contains("missing")),
        "{:?}",
        listed.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_backups_never_hold_plaintext_and_need_the_right_key() {
    let src = TestDb::new("bk_age").await;
    src.client().await.batch_execute("CREATE TABLE secrets (v text); INSERT INTO secrets SELECT 'TOPSECRET-' || g FROM generate_series(1, 500) g;").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_dir = tempfile::tempdir().unwrap();
    let id = age::x25519::Identity::generate();
    let id_file = key_dir.path().join("key.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&id_file, id.to_string().expose_secret()).unwrap();
    }
    let mut o = opts(dir.path(), &src);
    o.name = Some("b".into());
    o.level = 1;
    o.keys = KeyConfig {
        recipients: vec![id.to_public().to_string()],
        passphrase: Some("correct horse".to_string().into()),
        identity_file: None,
    };
    let m = backup::full(&src.settings(), &o, Arc::new(Quiet))
        .await
        .unwrap();
    assert!(m.is_encrypted());
    for (_, f) in m.files() {
        let raw = std::fs::read(dir.path().join("b").join(&f.path)).unwrap();
        assert!(
            raw.starts_with(b"age-encryption.org/v1"),
            "{} is sealed",
            f.path
        );
        assert!(
            !raw.windows(9).any(|w| w == b"TOPSECRET"),
            "{} holds plaintext",
            f.path
        );
    }
    let bdir = dir.path().join("b");
    let verify_with = |keys: KeyConfig| {
        let bdir = bdir.clone();
        async move {
            backup::verify(
                &bdir,
                &VerifyOptions {
                    keys,
                    restore_test: None,
                    workers: 2,
                },
                Arc::new(Quiet),
            )
            .await
        }
    };
    // The identity file opens it; so does the passphrase.
    let r = verify_with(KeyConfig {
        identity_file: Some(id_file.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    let r = verify_with(KeyConfig {
        passphrase: Some("correct horse".to_string().into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    // A wrong passphrase or another identity: a clear error.
    let err = verify_with(KeyConfig {
        passphrase: Some("wrong".to_string().into()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::WrongKey { .. }), "{err}");
    let other = key_dir.path().join("other.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(
            &other,
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret(),
        )
        .unwrap();
    }
    // Another identity: the key is wrong, not the backup (its files are intact).
    let err = verify_with(KeyConfig {
        identity_file: Some(other),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::WrongKey { .. }), "{err}");
    assert!(
        err.to_string().contains("wrong identity or passphrase"),
        "{err}"
    );
    let err = verify_with(KeyConfig::default()).await.unwrap_err();
    assert!(matches!(err, BackupError::KeysNeeded { .. }), "{err}");
    // An invalid recipient fails before anything is written.
    let mut bad = opts(dir.path(), &src);
    bad.name = Some("bad".into());
    bad.keys = KeyConfig {
        recipients: vec!["age1notakey".into()],
        ..Default::default()
    };
    let err = backup::full(&src.settings(), &bad, Arc::new(Quiet))
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::BadRecipient { .. }), "{err}");
    assert!(!dir.path().join("bad").exists());
    // And it restores with the key.
    let dst = TestDb::new("bk_age_dst").await;
    let mut ro = restore_opts();
    ro.keys = KeyConfig {
        identity_file: Some(id_file),
        ..Default::default()
    };
    backup::restore(&bdir, &target(&dst), &ro, Arc::new(Quiet))
        .await
        .unwrap();
    assert_eq!(content(&src).await, content(&dst).await);
}

struct KillFirstCopy {
    url: String,
    done: AtomicBool,
}
impl Progress for KillFirstCopy {
    fn table_bytes(&self, _table: &str, _bytes: u64) {
        if !self.done.swap(true, Ordering::SeqCst) {
            run_sql_now(
                &self.url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'COPY%'",
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_backup_fails_it_and_leaves_no_valid_backup() {
    let src = TestDb::new("bk_kill").await;
    src.client()
        .await
        .batch_execute("CREATE TABLE big (id int, v text); INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 200000) g;")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), &src);
    o.name = Some("killed".into());
    let err = backup::full(
        &src.settings(),
        &o,
        Arc::new(KillFirstCopy {
            url: src.url.clone(),
            done: AtomicBool::new(false),
        }),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Db(_)), "{err}");
    let listed = backup::list(dir.path()).await.unwrap();
    assert!(listed.iter().all(|b| !b.is_valid()), "{listed:?}");
    assert!(!dir.path().join("killed").join("manifest.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_since_last_restores_the_current_state() {
    let src = TestDb::new("bk_incr").await;
    let c = src.client().await;
    c.batch_execute(
        "CREATE TABLE users (id int PRIMARY KEY, name text, updated_at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE logs (line text);
         CREATE TABLE tags (tag text);
         INSERT INTO users (id, name, updated_at) SELECT g, 'u' || g, now() - interval '1 day' FROM generate_series(1, 100) g;
         INSERT INTO logs SELECT 'log ' || g FROM generate_series(1, 50) g;
         INSERT INTO tags VALUES ('a'), ('b');",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), &src);
    o.name = Some("base".into());
    backup::full(&src.settings(), &o, Arc::new(Quiet))
        .await
        .unwrap();
    c.batch_execute(
        "UPDATE users SET name = 'changed', updated_at = now() WHERE id IN (3, 7);
         INSERT INTO users (id, name) VALUES (101, 'new');
         INSERT INTO tags VALUES ('c');",
    )
    .await
    .unwrap();
    let mut bo = opts(dir.path(), &src);
    bo.name = Some("inc".into());
    let io = backup::IncrementalOptions {
        backup: bo,
        since: backup::Since::Last,
        base: None,
        columns: Default::default(),
    };
    let m = backup::incremental(&src.settings(), &io, Arc::new(Quiet))
        .await
        .unwrap();
    assert_eq!(m.base.as_ref().unwrap().name, "base");
    let mode = |n: &str| m.tables.iter().find(|t| t.name == n).unwrap();
    use backup::manifest::TableMode;
    assert!(
        matches!(mode("users").mode, TableMode::Changed { .. }),
        "{:?}",
        mode("users")
    );
    assert_eq!(mode("users").files.iter().map(|f| f.rows).sum::<u64>(), 3);
    assert_eq!(mode("logs").mode, TableMode::Unchanged);
    assert!(mode("logs").files.is_empty());
    assert_eq!(mode("tags").mode, TableMode::Full);
    assert!(m.stored_bytes() > 0);

    let dst = TestDb::new("bk_incr_dst").await;
    let s = backup::restore(
        &dir.path().join("inc"),
        &target(&dst),
        &restore_opts(),
        Arc::new(Quiet),
    )
    .await
    .unwrap();
    assert_eq!(s.chain, ["base", "inc"]);
    assert_eq!(content(&src).await, content(&dst).await);
    assert_eq!(schema(&src), schema(&dst));

    // Cleanup keeps the base an incremental needs, and the listing shows the chain.
    let listed = backup::list(dir.path()).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].base.as_deref(), Some("base"));
    std::fs::create_dir_all(dir.path().join("interrupted/data")).unwrap();
    let plan = backup::cleanup(
        dir.path(),
        0,
        false,
        chrono::Utc::now() + chrono::Duration::days(1),
    )
    .await
    .unwrap();
    let deleted: Vec<&str> = plan
        .decisions
        .iter()
        .filter(|d| d.delete)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(deleted, ["inc", "interrupted"], "{plan:?}");
    assert!(dir.path().join("base").join("manifest.json").exists());
    assert!(!dir.path().join("inc").exists());
}

/// Every drizzle-migrated database has `drizzle.__drizzle_migrations(created_at bigint)` of
/// epoch milliseconds: an incremental backup used to compare it with a time and fail. Now
/// pgkeel's and drizzle's own tables are taken whole, an auto-detected `updated_at` of a type
/// that is no time is compared whole too, and a bigint named with `--column` is read as epoch
/// milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_on_a_drizzle_database_takes_epoch_ms_and_bookkeeping_tables_right() {
    let src = TestDb::new("bk_incr_drizzle").await;
    let c = src.client().await;
    c.batch_execute(
        "CREATE SCHEMA drizzle;
         CREATE TABLE drizzle.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint);
         INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('h0', 1700000000000);
         CREATE TABLE events (id int PRIMARY KEY, name text, created_at bigint NOT NULL);
         CREATE TABLE notes (id int PRIMARY KEY, updated_at text);
         CREATE TABLE clicks (id int PRIMARY KEY, created_at bigint NOT NULL);
         INSERT INTO clicks VALUES (1, 1700000000);
         INSERT INTO events SELECT g, 'e' || g, 1700000000000 + g FROM generate_series(1, 50) g;
         INSERT INTO notes VALUES (1, 'yesterday');",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), &src);
    o.name = Some("base".into());
    backup::full(&src.settings(), &o, Arc::new(Quiet))
        .await
        .unwrap();
    c.batch_execute(
        "INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('h1', 1800000000000);
         INSERT INTO events VALUES (51, 'now', (extract(epoch FROM now()) * 1000)::bigint + 1000);
         INSERT INTO notes VALUES (2, 'today');
         INSERT INTO clicks VALUES (2, 1800000000);",
    )
    .await
    .unwrap();
    let mut bo = opts(dir.path(), &src);
    bo.name = Some("inc".into());
    let io = backup::IncrementalOptions {
        backup: bo,
        since: backup::Since::Last,
        base: None,
        columns: [("events".to_string(), "created_at".to_string())].into(),
    };
    let m = backup::incremental(&src.settings(), &io, Arc::new(Quiet))
        .await
        .unwrap();
    use backup::manifest::TableMode;
    let table = |n: &str| m.tables.iter().find(|t| t.name == n).unwrap();
    assert_eq!(table("__drizzle_migrations").mode, TableMode::Full);
    assert_eq!(table("notes").mode, TableMode::Full);
    // A bigint found by its name alone may hold seconds: compared whole, never read as ms.
    assert_eq!(table("clicks").mode, TableMode::Full);
    assert!(matches!(table("events").mode, TableMode::Changed { .. }));
    assert_eq!(table("events").files.iter().map(|f| f.rows).sum::<u64>(), 1);
    let dst = TestDb::new("bk_incr_drizzle_dst").await;
    backup::restore(
        &dir.path().join("inc"),
        &target(&dst),
        &restore_opts(),
        Arc::new(Quiet),
    )
    .await
    .unwrap();
    assert_eq!(content(&src).await, content(&dst).await);

    // A column that holds no time, named by hand, is refused with what to name instead.
    let mut bo = opts(dir.path(), &src);
    bo.name = Some("inc2".into());
    let io = backup::IncrementalOptions {
        backup: bo,
        since: backup::Since::Last,
        base: Some("base".into()),
        columns: [("notes".to_string(), "updated_at".to_string())].into(),
    };
    let err = backup::incremental(&src.settings(), &io, Arc::new(Quiet))
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::BadChangeColumn { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_names_are_whole_seconds_and_two_in_one_second_both_succeed() {
    let src = TestDb::new("bk_names").await;
    src.client()
        .await
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), &src);
    let settings = src.settings();
    let (a, b) = tokio::join!(
        backup::full(&settings, &o, Arc::new(Quiet)),
        backup::full(&settings, &o, Arc::new(Quiet))
    );
    let (a, b) = (a.unwrap().name, b.unwrap().name);
    // `full-YYYYMMDDTHHMMSSZ`, the README's and pre-deploy's format; `-2` for the second.
    let shape = |n: &str| {
        let rest = n.strip_prefix("full-").unwrap_or("");
        let (stamp, suffix) = rest.split_at(rest.len().min(16));
        stamp.len() == 16
            && stamp.as_bytes()[8] == b'T'
            && stamp.ends_with('Z')
            && stamp[..8].bytes().all(|c| c.is_ascii_digit())
            && (suffix.is_empty()
                || suffix
                    .strip_prefix('-')
                    .is_some_and(|d| d.parse::<u32>().is_ok()))
    };
    assert!(shape(&a) && shape(&b), "{a} {b}");
    assert_ne!(a, b);
    assert_eq!(backup::list(dir.path()).await.unwrap().len(), 2);
}
